"""B2B and hybrid features on a hand-made data set with hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.historical import features_as_of
from features.prepare import prepare
from leadscore.config import load_config
from leadscore.schema import TABLES, coerce

AS_OF = pd.Timestamp("2026-03-01")
D = pd.Timedelta(days=1)


def _tables(extra_events: list[tuple] = ()) -> dict[str, pd.DataFrame]:
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "name": ["Acme", "Tiny"],
            "industry": ["software", "retail"],
            "employee_count": [1000, 50],
            "annual_revenue": [1e8, None],
            "country": ["US", "AU"],
            "region": ["NA", "APAC"],
            "owner_id": ["rep_1", None],
            "territory": ["NA-mid", "APAC-smb"],
        }
    )
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4", "L5"],
            "account_id": ["A1", "A1", "A1", "A2", "A1"],
            "created_at": ["2026-01-01"] * 4 + ["2026-04-01"],
            "source": "web",
            "title": None,
            "seniority": ["vp", "director", "individual", None, "cxo"],
            "buying_role": ["economic_buyer", "champion", "user", "unknown", "champion"],
            "email_domain_type": ["business", "free", "business", "business", "business"],
        }
    )
    ev = [  # (lead, account, type, age in days, topic); negative age = after as-of
        ("L1", "A1", "pricing_page", 1, None),
        ("L1", "A1", "pricing_page", 2, None),
        ("L1", "A1", "pricing_page", 3, None),
        ("L1", "A1", "demo_request", 10, None),
        ("L1", "A1", "solution_page", 20, None),
        ("L1", "A1", "page_view", 5, None),
        ("L1", "A1", "meeting_booked", 30.5, None),
        ("L1", "A1", "pricing_page", -1, None),
        ("L1", "A1", "pricing_page", 100, None),
        ("L2", "A1", "email_open", 2, None),
        ("L2", "A1", "webinar", 40, None),
        ("L3", "A1", "content_download", 3, None),
        (None, "A1", "third_party_intent", 6, "crm"),
        (None, "A1", "third_party_intent", 50, "security"),
        (None, "A1", "third_party_intent", 60, "crm"),
        ("L5", "A1", "pricing_page", 4, None),
        *extra_events,
    ]
    events = pd.DataFrame(
        {
            "event_id": [f"E{i}" for i in range(len(ev))],
            "ts": [AS_OF - a * D for _, _, _, a, _ in ev],
            "account_id": [e[1] for e in ev],
            "lead_id": [e[0] for e in ev],
            "type": [e[2] for e in ev],
            "topic": [e[4] for e in ev],
        }
    )
    outcomes = pd.DataFrame(
        {
            "lead_id": ["L1", "L2"],
            "account_id": ["A1", "A1"],
            "stage": ["mql", "sql"],
            "value": [None, None],
            "occurred_at": [AS_OF - 20 * D, AS_OF - 5 * D],
        }
    )
    raw = {"accounts": accounts, "leads": leads, "events": events, "outcomes": outcomes}
    return {k: coerce(TABLES["b2b"][k], v, pd.Timestamp("2027-01-01")) for k, v in raw.items()}


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return features_as_of(prepare("b2b", _tables()), AS_OF, load_config("b2b")).set_index("lead_id")


def test_only_leads_that_exist_at_as_of_are_scored(rows):
    assert list(rows.index) == ["L1", "L2", "L3", "L4"]


def test_fit(rows):
    l1, l4 = rows.loc["L1"], rows.loc["L4"]
    assert (l1.fit_industry_match, l1.fit_size_match, l1.fit_revenue_match, l1.fit_region_match) == (
        1,
        1,
        1,
        1,
    )
    assert l1.fit_icp_score == 1.0 and l1.fit_log_employees == pytest.approx(3.0)
    assert np.isnan(l4.fit_revenue_match) and l4.fit_icp_score == 0.0  # unknown revenue is not a miss
    assert l1.fit_seniority == 3 and np.isnan(l4.fit_seniority)
    assert rows.loc["L2"].fit_business_email == 0 and l1.fit_buying_role == "economic_buyer"
    assert l1.fit_industry == "software"


def test_lead_intent(rows):
    l1 = rows.loc["L1"]
    assert (l1.intent_lead_hi_7d, l1.intent_lead_hi_30d, l1.intent_lead_hi_90d) == (3, 5, 5)
    assert l1.intent_lead_pricing_7d == 3 and l1.intent_lead_demo_30d == 1
    assert l1.intent_lead_decayed == pytest.approx(sum(2 ** (-d / 14) for d in (1, 2, 3, 10, 20)))
    assert l1.intent_lead_surge == pytest.approx((3 + 1) / ((5 - 3) / 4 + 1))
    assert l1.intent_lead_days_since_hi == pytest.approx(1.0)
    assert np.isnan(rows.loc["L4"].intent_lead_days_since_hi) and rows.loc["L4"].intent_lead_surge == 1.0


def test_account_intent(rows):
    l2 = rows.loc["L2"]  # account features are the same for every lead of the account
    assert l2.intent_acct_hi_30d == 6  # 5 of L1 + 1 third-party (L5 not yet a lead)
    assert l2.intent_acct_surge == pytest.approx((4 + 1) / ((6 - 4) / 4 + 1))
    assert l2.intent_acct_topics_90d == 2 and l2.intent_acct_days_since_hi == pytest.approx(1.0)


def test_buying_group(rows):
    l1, l3 = rows.loc["L1"], rows.loc["L3"]
    assert l1.engagement_contacts_30d == 2  # L1 and L3 (L2 only opened an email)
    assert l1.engagement_roles_30d == 2
    assert (l1.engagement_economic_buyer, l1.engagement_champion) == (1, 0)
    assert l1.engagement_role_coverage == pytest.approx(1 / 3)
    assert l1.engagement_max_seniority == 3
    assert l1.engagement_lead_events_30d == 6 and l1.engagement_lead_share == pytest.approx(6 / 7)
    assert l3.engagement_lead_share == pytest.approx(1 / 7)
    assert l1.engagement_meetings_90d == 1
    assert np.isnan(rows.loc["L4"].engagement_max_seniority) and rows.loc["L4"].engagement_lead_share == 0


def test_events_after_as_of_change_nothing(rows):
    later = [("L1", "A1", "pricing_page", -0.001 * k, None) for k in range(1, 30)]
    later += [("L2", "A1", "demo_request", -3, None), (None, "A1", "third_party_intent", -2, "analytics")]
    again = features_as_of(prepare("b2b", _tables(later)), AS_OF, load_config("b2b")).set_index("lead_id")
    pd.testing.assert_frame_equal(rows, again)


def test_hybrid_adds_b2b_rigor_from_the_gate_stage():
    conf = load_config("hybrid")  # gate_stage: sql
    h = features_as_of(prepare("hybrid", _tables()), AS_OF, conf).set_index("lead_id")
    assert h.loc["L1"].lifecycle_stage == "mql" and h.loc["L2"].lifecycle_stage == "sql"
    assert np.isnan(h.loc["L1"].fit_icp_score) and np.isnan(h.loc["L1"].engagement_economic_buyer)
    assert h.loc["L2"].fit_icp_score == 1.0 and h.loc["L2"].engagement_economic_buyer == 1.0
    assert pd.isna(h.loc["L1"].fit_buying_role) and h.loc["L2"].fit_buying_role == "champion"
    assert h.loc["L1"].behavior_events_7d == 4 and h.loc["L1"].behavior_active_days_30d == 6
    assert h.loc["L1"].intent_lead_pricing_7d == 3  # early-stage leads still get intent


def test_duplicate_and_orphan_events_are_handled_and_counted():
    t = _tables()
    ev = t["events"]
    dup = ev.iloc[[0, 0]].copy()
    orphan = ev.iloc[[1]].assign(event_id="X1", lead_id="L_unknown")
    t["events"] = pd.concat([ev, dup, orphan], ignore_index=True)
    p = prepare("b2b", t)
    assert p.drops.counts == {"duplicate event_id (kept the first)": 2, "events for an unknown lead_id": 1}
    rows = features_as_of(p, AS_OF, load_config("b2b")).set_index("lead_id")
    assert rows.loc["L1"].intent_lead_pricing_7d == 3


def test_duplicated_marks_every_repeat_after_the_first_exactly():
    from features.prepare import _duplicated

    rng = np.random.default_rng(0)
    ids = pd.Series(rng.choice([f"e{i}" for i in range(500)], 3000), dtype="str")
    assert np.array_equal(_duplicated(ids), ids.duplicated(keep="first").to_numpy())
    assert not _duplicated(pd.Series([f"e{i}" for i in range(1000)], dtype="str")).any()
