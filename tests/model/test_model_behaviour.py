"""Model behaviour: direction, invariance, minimum quality against the generator's known ceiling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.historical import training_set
from features.prepare import prepare
from leadscore.config import load_config
from leadscore.schema import load_dataset
from serving.schemas import ScoreRequest
from serving.scorer import Scorer
from synthetic import read_truth
from training.split import split_rows


def _rows(motion, folder, n=3000):
    conf = load_config(motion)
    ts = training_set(prepare(motion, load_dataset(folder, motion)), conf)
    return ts.sample(min(n, len(ts)), random_state=0).reset_index(drop=True)


def _mean_score(model, frame: pd.DataFrame) -> float:
    return float(model.predict(None, frame).mean())


def test_b2b_more_pricing_visits_and_an_engaged_economic_buyer_raise_the_score(trained, b2b_dir):
    model = trained["b2b"].fitted.model
    rows = _rows("b2b", b2b_dir)
    base = _mean_score(model, rows)
    keen = rows.assign(
        intent_lead_pricing_7d=rows.intent_lead_pricing_7d + 3,
        intent_lead_hi_7d=rows.intent_lead_hi_7d + 3,
        intent_lead_hi_30d=rows.intent_lead_hi_30d + 3,
        intent_lead_hi_90d=rows.intent_lead_hi_90d + 3,
        intent_lead_decayed=rows.intent_lead_decayed + 2.5,
        intent_lead_days_since_hi=1.0,
    )
    assert _mean_score(model, keen) > base * 1.2
    no_eb = rows.assign(engagement_economic_buyer=0.0)
    eb = rows.assign(
        engagement_economic_buyer=1.0,
        engagement_roles_30d=rows.engagement_roles_30d.clip(lower=2),
        engagement_role_coverage=rows.engagement_role_coverage.clip(lower=0.34),
    )
    assert _mean_score(model, eb) > _mean_score(model, no_eb)


def test_b2c_fresh_high_value_abandoned_cart_raises_the_score(trained, b2c_dir):
    model = trained["b2c"].fitted.model
    rows = _rows("b2c", b2c_dir)
    empty = rows.assign(
        cart_items=0.0, cart_value=0.0, cart_adds_7d=0.0, cart_minutes_since_add=np.nan, cart_abandoned=0.0
    )
    fresh = rows.assign(
        cart_items=2.0,
        cart_value=400.0,
        cart_adds_7d=2.0,
        cart_minutes_since_add=45.0,
        cart_abandoned=1.0,
        behavior_recency_days=0.03,
    )
    assert _mean_score(model, fresh) > 1.5 * _mean_score(model, empty)


def test_scores_do_not_depend_on_lead_id_or_name(trained):
    scorer = Scorer()
    scorer.reload()
    body = {
        "motion": "b2b",
        "as_of": "2026-06-20T12:00:00Z",
        "lead": {
            "lead_id": "L-1",
            "account_id": "A-new-1",
            "created_at": "2026-05-01",
            "buying_role": "champion",
        },
        "account": {"name": "Acme", "industry": "software", "employee_count": 900, "region": "NA"},
        "events": [{"event_id": "e1", "ts": "2026-06-19T10:00:00Z", "type": "pricing_page"}],
    }
    a = scorer.score(ScoreRequest.model_validate(body))
    body["lead"] = body["lead"] | {"lead_id": "L-2-renamed"}
    body["account"] = body["account"] | {"name": "Totally Different Ltd"}
    b = scorer.score(ScoreRequest.model_validate(body))
    assert a["score"] == b["score"] and a["tier"] == b["tier"]


@pytest.mark.parametrize("motion", ["b2b", "b2c"])
def test_quality_near_the_generators_ceiling(trained, motion, b2b_dir, b2c_dir):
    """The ceiling: AUC of the generator's latent propensity on the same test rows."""
    folder = b2c_dir if motion == "b2c" else b2b_dir
    conf = load_config(motion)
    ts = training_set(prepare(motion, load_dataset(folder, motion)), conf)
    test = split_rows(ts["label"].to_numpy(), ts["as_of"].to_numpy(), 0).test
    id_col = "customer_id" if motion == "b2c" else "lead_id"
    truth = read_truth(folder).set_index(id_col)["p_true"]
    ceiling = roc_auc_score(ts["label"].iloc[test], truth.loc[ts[id_col].iloc[test]].to_numpy())
    m = trained[motion].fitted.metrics
    assert m["model"]["auc"] >= ceiling - 0.06, (m["model"]["auc"], ceiling)
    assert m["model"]["ece"] < 0.03
