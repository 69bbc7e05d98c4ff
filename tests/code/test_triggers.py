"""Which triggers a re-score makes, from an entity's latest score kept with only the features triggers read."""

from __future__ import annotations

from leadscore.config import load_config
from serving.triggers import fired, watched


def _state(score: float, tier: str, features: dict) -> dict:
    return {"entity_id": "C1", "account_id": None, "score": score, "tier": tier, "route": "nurture_email",
            "owner": None, "sla_minutes": 60, "features": features, "reasons": []}  # fmt: skip


def test_the_kept_features_are_those_the_triggers_read_and_they_fire_the_same():
    conf = load_config("b2c")
    assert watched(conf) == ("cart_value", "cart_abandoned")
    full_old = {"cart_value": 20.0, "cart_abandoned": 1.0, "behavior_sessions_7d": 3.0}
    full_new = {"cart_value": 480.0, "cart_abandoned": 1.0, "behavior_sessions_7d": 4.0}
    kept = watched(conf)
    old, new = _state(0.4, "medium", full_old), _state(0.7, "high", full_new)
    slim_old = _state(0.4, "medium", {k: full_old.get(k) for k in kept})
    slim_new = _state(0.7, "high", {k: full_new.get(k) for k in kept})
    names = [f.trigger.name for f in fired(conf, old, new, now=0)]
    assert names == [f.trigger.name for f in fired(conf, slim_old, slim_new, now=0)]
    assert set(names) == {"cart_abandoned", "tier_up"}
    assert [
        f.trigger.name for f in fired(conf, slim_new, _state(0.5, "medium", slim_new["features"]), now=0)
    ] == ["at_risk"]
