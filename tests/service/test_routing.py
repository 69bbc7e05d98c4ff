"""Routing, gates and grades as plain functions, per motion (no server)."""

from __future__ import annotations

import numpy as np
import pytest

from leadscore.config import load_config
from serving.routing import RouteDecision, decide_many, grades, route_names


def decide(
    conf,
    *,
    tier: str,
    features: dict,
    expected_value: float,
    groups: dict | None = None,
    stage: str | None = None,
    account: dict | None = None,
    consent_email: bool | None = None,
    consent_sms: bool | None = None,
) -> RouteDecision:
    """One lead's decision: ``decide_many`` on a batch of one."""
    return decide_many(
        conf,
        tiers=[tier],
        features={k: [v] for k, v in features.items()},
        expected_value=[expected_value],
        groups={k: [v] for k, v in (groups or {}).items()},
        stages=[stage],
        accounts=[account],
        consent_email=[consent_email],
        consent_sms=[consent_sms],
    )[0]


def grade(conf, groups: dict) -> tuple:
    """One lead's grade, fit score and engagement score."""
    g, fit, eng = grades(conf, {k: [v] for k, v in groups.items()}, 1)
    return g[0], fit[0], eng[0]


B2B_ENGAGED = {
    "engagement_lead_events_30d": 5,
    "engagement_economic_buyer": 1,
    "engagement_role_coverage": 0.67,
    "engagement_meetings_90d": 1,
}


def test_b2b_tier_a_goes_to_the_account_owner_within_the_hour():
    d = decide(
        load_config("b2b"),
        tier="A",
        features=B2B_ENGAGED,
        expected_value=1e4,
        account={"owner_id": "rep_7", "territory": "NA-enterprise"},
        stage="sql",
    )
    assert (d.route, d.owner, d.sla_minutes) == ("ae_direct", "rep_7", 60)
    assert d.gates == [{"stage": "opportunity", "ready": True, "missing": []}]


def test_b2b_tier_b_goes_to_the_territory_queue_and_gates_name_missing_evidence():
    d = decide(
        load_config("b2b"),
        tier="B",
        features={"engagement_lead_events_30d": 1},
        expected_value=10,
        account={"territory": "EMEA-smb"},
        stage="mql",
    )
    assert (d.route, d.owner, d.sla_minutes) == ("sdr_qualify", "queue:EMEA-smb", 240)
    missing = {g["stage"]: g["missing"] for g in d.gates}
    assert "no economic buyer engaged" in missing["opportunity"]
    assert missing["sql"] == ["the lead has fewer than 3 engagements in the last 30 days"]
    assert decide(load_config("b2b"), tier="D", features={}, expected_value=0).route == "recycle"


def test_b2c_consent_value_floor_human_threshold_and_flows():
    conf = load_config("b2c")
    base = {"lifecycle_consent_email": 1, "lifecycle_consent_sms": 0}
    assert (
        decide(conf, tier="high", features={**base, "lifecycle_consent_email": 0}, expected_value=99).route
        == "suppress_no_consent"
    )
    assert decide(conf, tier="low", features=base, expected_value=0.1).route == "fast_exit"
    human = decide(conf, tier="high", features={**base, "cart_value": 400}, expected_value=120)
    assert (human.route, human.sla_minutes) == ("human_concierge", 15)
    assert (
        decide(
            conf, tier="high", features={**base, "cart_value": 100, "cart_abandoned": 1}, expected_value=30
        ).route
        == "cart_recovery"
    )
    assert (
        decide(conf, tier="low", features={**base, "behavior_product_views_7d": 4}, expected_value=2).route
        == "browse_abandonment"
    )
    assert decide(conf, tier="low", features=base, expected_value=2).route == "nurture"
    assert (
        decide(
            conf, tier="high", features=base, expected_value=50, consent_email=False, consent_sms=True
        ).route
        != "suppress_no_consent"
    )


def test_hybrid_routes_early_stages_b2c_style_and_later_with_b2b_rigor():
    conf = load_config("hybrid")
    early = decide(conf, tier="B", features={}, expected_value=100, stage="mql")
    assert (early.route, early.owner) == ("in_app_onboarding", None)
    late = decide(
        conf, tier="B", features=B2B_ENGAGED, expected_value=100, stage="sql", account={"owner_id": "rep_2"}
    )
    assert (late.route, late.owner) == ("ae_direct", "rep_2")


def test_grade_from_group_contributions():
    conf = load_config("b2b")
    assert grade(conf, {"fit": 2.0, "intent": 1.5, "engagement": 1.0})[0] == "A1"
    assert grade(conf, {"fit": -2.0, "intent": -2.0})[0] == "D4"
    g, fit, eng = grade(conf, {"fit": 0.0, "intent": 0.0})
    assert (fit, eng, g) == (50, 50, "B2")
    assert grade(conf, {"behavior": 1.0}) == (None, None, None)


def test_a_batch_decides_each_row_as_it_would_alone():
    """decide_many evaluates each rule once per batch; every row must come out as decide gives it alone,
    missing, NaN and non-numeric values included."""
    import numpy as np

    rng = np.random.default_rng(7)
    n = 400
    for motion in ("b2b", "b2c", "hybrid"):
        conf = load_config(motion)
        names = {c.feature for r in conf.routes for c in r.when if c.feature} | {
            c.feature for g in conf.gates for c in g.require if c.feature
        }
        features = {
            f: [
                None if u < 0.1 else float("nan") if u < 0.2 else "n/a" if u < 0.25 else float(v)
                for u, v in zip(rng.uniform(size=n), rng.integers(0, 6, n), strict=True)
            ]
            for f in names
        }
        features["lifecycle_consent_email"] = rng.integers(0, 2, n).astype(float).tolist()
        tiers = rng.choice([lv.name for lv in conf.tiers.levels], n).tolist()
        ev = rng.uniform(0, 3, n).tolist()
        stages = rng.choice(["mql", "sql", "opportunity", None], n).tolist()
        groups = {"fit": rng.normal(size=n).tolist(), "intent": rng.normal(size=n).tolist()}
        accounts = [
            {"owner_id": None if k % 3 else f"rep_{k}", "territory": "NA" if k % 2 else None}
            for k in range(n)
        ]
        sms = [None if k % 4 else bool(k % 8) for k in range(n)]
        many = decide_many(
            conf,
            tiers=tiers,
            features=features,
            expected_value=ev,
            groups=groups,
            stages=stages,
            accounts=accounts,
            consent_sms=sms,
        )
        alone = [
            decide(
                conf,
                tier=tiers[i],
                features={k: v[i] for k, v in features.items()},
                expected_value=ev[i],
                groups={k: v[i] for k, v in groups.items()},
                stage=stages[i],
                account=accounts[i],
                consent_sms=sms[i],
            )
            for i in range(n)
        ]
        assert many == alone
        arrays = {
            k: np.array([np.nan if v is None or isinstance(v, str) else v for v in col])
            for k, col in features.items()
        }  # the scorer hands numeric features over as float arrays
        assert (
            decide_many(
                conf,
                tiers=tiers,
                features=arrays,
                expected_value=ev,
                groups=groups,
                stages=stages,
                accounts=accounts,
                consent_sms=sms,
            )
            == many
        )
        assert len({d.route for d in many}) >= 3, motion  # the batch exercises several routes
        names_only = route_names(conf, tiers=tiers, features=features, expected_value=ev, stages=stages,
                                 consent_sms=sms)  # fmt: skip
        assert names_only.tolist() == [d.route for d in many]  # batch scoring's column of routes


def test_missing_or_nan_consent_is_no_consent():
    conf = load_config("b2c")
    for value in (None, float("nan")):
        d = decide(
            conf,
            tier="high",
            features={"lifecycle_consent_email": value, "cart_value": 400},
            expected_value=120,
        )
        assert d.route == "suppress_no_consent"


def test_a_batch_decides_each_row_as_a_batch_of_one_would():
    """Rows of one batch in different stages and with different evidence: each gets its own gates and route
    (cases are built once per batch and shared; they must not leak between rows)."""
    conf = load_config("b2b")
    rows = [
        dict(tier="A", features=B2B_ENGAGED, stage="sql"),
        dict(tier="B", features={**B2B_ENGAGED, "engagement_economic_buyer": 0}, stage="mql"),
        dict(tier="B", features={"engagement_lead_events_30d": 1}, stage="mql"),
        dict(tier="A", features=B2B_ENGAGED, stage=None),
        dict(tier="C", features={"engagement_lead_events_30d": 1}, stage="opportunity"),
        dict(tier="A", features=B2B_ENGAGED, stage="sql"),
    ]
    names = sorted({k for r in rows for k in r["features"]})
    batch = decide_many(
        conf,
        tiers=[r["tier"] for r in rows],
        features={k: [r["features"].get(k, float("nan")) for r in rows] for k in names},
        expected_value=[100.0] * len(rows),
        stages=[r["stage"] for r in rows],
    )
    alone = [
        decide(
            conf,
            tier=r["tier"],
            expected_value=100.0,
            stage=r["stage"],
            features={k: r["features"].get(k, float("nan")) for k in names},
        )  # fmt: skip
        for r in rows
    ]
    assert [(d.route, d.gates) for d in batch] == [(d.route, d.gates) for d in alone]
    assert len({str(d.gates) for d in batch}) >= 4  # the rows' cases differ


def test_scores_are_counted_by_tenth_one_at_a_time_as_in_a_batch():
    from serving.metrics import band_of, score_bands

    scores = [0.0, 0.05, 0.1, 0.3999, 0.4, 0.95, 0.99999, 1.0]
    assert [band_of(s) for s in scores] == [0, 0, 1, 3, 4, 9, 9, 9]
    assert score_bands(scores).tolist() == [2, 1, 0, 1, 1, 0, 0, 0, 0, 3]
    assert score_bands(scores).tolist() == np.bincount([band_of(s) for s in scores], minlength=10).tolist()


def test_a_spec_replaces_the_routes_checked_as_a_motions_and_routes_on_missing_features_are_named():
    from leadscore.config import Route, routes_lacking
    from leadscore.errors import UserError

    conf = load_config("b2c")
    # The motion's routes read its own features: on a flat export's columns, those routes can never apply.
    assert routes_lacking(conf.routes, ["TotalVisits", "Lead Origin"]) == {
        "human_concierge": ["cart_value"],
        "cart_recovery": ["cart_abandoned"],
        "browse_abandonment": ["behavior_product_views_7d"],
    }
    own = [
        Route(name="call", when=[{"tier": ["high"]}, {"feature": "TotalVisits", "op": ">=", "value": 5}]),
        Route(name="rest"),
    ]
    mine = conf.with_routes(own)
    assert [r.name for r in mine.routes] == ["call", "rest"] and routes_lacking(
        mine.routes, ["TotalVisits"]
    ) == {}
    names = route_names(mine, tiers=["high", "high", "low"], features={"TotalVisits": [7.0, 2.0, 9.0]},
                        expected_value=[1.0, 1.0, 1.0])  # fmt: skip
    assert names.tolist() == ["call", "rest", "rest"]
    with pytest.raises(UserError, match="the last route must have no conditions"):
        conf.with_routes(own[:1])
    with pytest.raises(UserError, match="route 'call': tier 'A' is not one of"):
        conf.with_routes([Route(name="call", when=[{"tier": ["A"]}]), Route(name="rest")])
