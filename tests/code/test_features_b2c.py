"""B2C behaviour, cart and lifecycle features on a hand-made data set with hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.historical import features_as_of
from features.prepare import prepare
from leadscore.config import load_config
from leadscore.schema import TABLES, coerce

AS_OF = pd.Timestamp("2026-03-01")
S = pd.Timedelta(seconds=1)
H = 3600 * S
D = 24 * H


def _tables() -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3"],
            "created_at": [pd.Timestamp("2026-01-01"), AS_OF - D, AS_OF + D],
            "channel": ["paid_search", None, "social"],
            "country": "US",
            "device": ["mobile", "desktop", "mobile"],
            "consent_email": [True, False, True],
            "consent_sms": [False, False, True],
        }
    )
    ev = [  # (session, type, time before as-of, category, price, qty)
        ("S1", "page_view", 2 * H, None, None, None),
        ("S1", "product_view", 2 * H - 60 * S, "shoes", 80, 1),
        ("S1", "add_to_cart", 2 * H - 120 * S, "shoes", 80, 2),
        ("S1", "search", 2 * H - 180 * S, None, None, None),
        ("S2", "product_view", 3 * D, "books", 15, 1),
        ("S2", "add_to_cart", 3 * D - 60 * S, "books", 15, 1),
        ("S2", "remove_from_cart", 3 * D - 120 * S, "books", 15, 1),
        ("S3", "product_view", 10 * D, "apparel", 45, 1),
        ("S3", "add_to_cart", 10 * D - 60 * S, "apparel", 45, 1),
        ("S3", "checkout_start", 10 * D - 120 * S, None, 45, None),
        ("S3", "purchase", 10 * D - 300 * S, None, 45, None),
        ("S4", "page_view", 45 * D, None, None, None),
        ("S5", "email_click", 5 * D, None, None, None),
        ("S6", "add_to_cart", -1 * H, "toys", 500, 3),
    ]
    events = pd.DataFrame(
        {
            "event_id": [f"E{i}" for i in range(len(ev))],
            "ts": [AS_OF - e[2] for e in ev],
            "customer_id": "C1",
            "session_id": [e[0] for e in ev],
            "type": [e[1] for e in ev],
            "product_id": None,
            "category": [e[3] for e in ev],
            "price": [e[4] for e in ev],
            "quantity": [e[5] for e in ev],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["O0", "O1"],
            "customer_id": ["C1", "C1"],
            "ts": [AS_OF - 100 * D, AS_OF - 10 * D + 300 * S],
            "amount": [100.0, 45.0],
            "margin": [20.0, 9.0],
        }
    )
    outcomes = pd.DataFrame(
        {
            "customer_id": ["C1"],
            "purchased": [True],
            "value": [45.0],
            "occurred_at": [AS_OF - 10 * D + 300 * S],
        }
    )
    raw = {"customers": customers, "events": events, "orders": orders, "outcomes": outcomes}
    return {k: coerce(TABLES["b2c"][k], v, pd.Timestamp("2027-01-01")) for k, v in raw.items()}


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return features_as_of(prepare("b2c", _tables()), AS_OF, load_config("b2c")).set_index("customer_id")


def test_population_is_customers_existing_at_as_of(rows):
    assert list(rows.index) == ["C1", "C2"]


def test_behaviour(rows):
    c1 = rows.loc["C1"]
    assert c1.behavior_recency_days == pytest.approx((7200 - 180) / 86400)
    assert (c1.behavior_sessions_1d, c1.behavior_sessions_7d, c1.behavior_sessions_30d) == (1, 3, 4)
    assert c1.behavior_returning == 1
    assert (c1.behavior_product_views_7d, c1.behavior_product_views_30d) == (2, 3)
    assert c1.behavior_categories_30d == 3 and c1.behavior_searches_7d == 1
    assert c1.behavior_email_clicks_30d == 1
    assert c1.behavior_minutes_on_site_30d == pytest.approx(3 + 2 + 5 + 0)
    assert (c1.behavior_orders, c1.behavior_monetary) == (2, 145)
    assert c1.behavior_days_since_order == pytest.approx(10 - 300 / 86400)


def test_cart(rows):
    c1 = rows.loc["C1"]
    assert (c1.cart_items, c1.cart_value) == (2, 160)  # books added then removed; shoes ×2 open
    assert (c1.cart_adds_7d, c1.cart_removes_7d) == (2, 1)
    assert c1.cart_minutes_since_add == pytest.approx((7200 - 120) / 60)
    assert c1.cart_abandoned == 1 and c1.cart_checkout_no_purchase == 0


def test_lifecycle_and_consent(rows):
    c1, c2 = rows.loc["C1"], rows.loc["C2"]
    assert c1.lifecycle_stage == "repeat" and c2.lifecycle_stage == "visitor"
    assert c1.lifecycle_tenure_days == pytest.approx(59)
    assert (c1.lifecycle_channel, c1.lifecycle_device) == ("paid_search", "mobile")
    assert (c1.lifecycle_consent_email, c1.lifecycle_consent_sms) == (1, 0)
    assert np.isnan(c2.behavior_recency_days) and c2.cart_value == 0 and np.isnan(c2.cart_minutes_since_add)


def test_consent_is_not_a_model_input_by_default():
    conf = load_config("b2c")
    assert {"lifecycle_consent_email", "lifecycle_consent_sms"} <= set(conf.model_inputs_exclude)
