"""Routing, gates and grades as plain functions, per motion (no server)."""

from __future__ import annotations

from leadscore.config import load_config
from serving.routing import decide, grade

B2B_ENGAGED = {"engagement_lead_events_30d": 5, "engagement_economic_buyer": 1, "engagement_role_coverage": 0.67,
               "engagement_meetings_90d": 1}


def test_b2b_tier_a_goes_to_the_account_owner_within_the_hour():
    d = decide(load_config("b2b"), tier="A", features=B2B_ENGAGED, expected_value=1e4,
               account={"owner_id": "rep_7", "territory": "NA-enterprise"}, stage="sql")
    assert (d.route, d.owner, d.sla_minutes) == ("ae_direct", "rep_7", 60)
    assert d.gates == [{"stage": "opportunity", "ready": True, "missing": []}]


def test_b2b_tier_b_goes_to_the_territory_queue_and_gates_name_missing_evidence():
    d = decide(load_config("b2b"), tier="B", features={"engagement_lead_events_30d": 1}, expected_value=10,
               account={"territory": "EMEA-smb"}, stage="mql")
    assert (d.route, d.owner, d.sla_minutes) == ("sdr_qualify", "queue:EMEA-smb", 240)
    missing = {g["stage"]: g["missing"] for g in d.gates}
    assert "no economic buyer engaged" in missing["opportunity"]
    assert missing["sql"] == ["the lead has fewer than 3 engagements in the last 30 days"]
    assert decide(load_config("b2b"), tier="D", features={}, expected_value=0).route == "recycle"


def test_b2c_consent_value_floor_human_threshold_and_flows():
    conf = load_config("b2c")
    base = {"lifecycle_consent_email": 1, "lifecycle_consent_sms": 0}
    assert decide(conf, tier="high", features={**base, "lifecycle_consent_email": 0}, expected_value=99).route == \
        "suppress_no_consent"
    assert decide(conf, tier="low", features=base, expected_value=0.1).route == "fast_exit"
    human = decide(conf, tier="high", features={**base, "cart_value": 400}, expected_value=120)
    assert (human.route, human.sla_minutes) == ("human_concierge", 15)
    assert decide(conf, tier="high", features={**base, "cart_value": 100, "cart_abandoned": 1},
                  expected_value=30).route == "cart_recovery"
    assert decide(conf, tier="low", features={**base, "behavior_product_views_7d": 4}, expected_value=2).route == \
        "browse_abandonment"
    assert decide(conf, tier="low", features=base, expected_value=2).route == "nurture"
    assert decide(conf, tier="high", features=base, expected_value=50, consent_email=False,
                  consent_sms=True).route != "suppress_no_consent"


def test_hybrid_routes_early_stages_b2c_style_and_later_with_b2b_rigor():
    conf = load_config("hybrid")
    early = decide(conf, tier="B", features={}, expected_value=100, stage="mql")
    assert (early.route, early.owner) == ("in_app_onboarding", None)
    late = decide(conf, tier="B", features=B2B_ENGAGED, expected_value=100, stage="sql",
                  account={"owner_id": "rep_2"})
    assert (late.route, late.owner) == ("ae_direct", "rep_2")


def test_grade_from_group_contributions():
    conf = load_config("b2b")
    assert grade(conf, {"fit": 2.0, "intent": 1.5, "engagement": 1.0})[0] == "A1"
    assert grade(conf, {"fit": -2.0, "intent": -2.0})[0] == "D4"
    g, fit, eng = grade(conf, {"fit": 0.0, "intent": 0.0})
    assert (fit, eng, g) == (50, 50, "B2")
    assert grade(conf, {"behavior": 1.0}) == (None, None, None)
