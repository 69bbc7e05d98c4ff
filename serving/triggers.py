"""Triggers: which of a motion's declared changes (``triggers:`` in its conf) a re-score makes, and the body of
the notification each one pushes. Plain functions over the previous and the new score, tested without a server.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leadscore.config import MotionConfig, Trigger

Words = Callable[[list], list[dict[str, Any]]]  # reasons as kept → as a notification shows them


@dataclass(frozen=True)
class Fired:
    trigger: Trigger
    dedupe_key: str  # (motion, entity, trigger, window): one notification each at most
    body: dict[str, Any]


def watched(conf: MotionConfig) -> tuple[str, ...]:
    """The features a motion's triggers read (the rest need not be kept with an entity's latest score)."""
    names = [n for t in conf.triggers for n in ((t.feature,) if t.feature else ()) + tuple(t.require)]
    return tuple(dict.fromkeys(names))


def _number(features: dict[str, Any], name: str | None) -> float:
    v = features.get(name) if name else None
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return f


def _reached(t: Trigger, features: dict[str, Any]) -> bool:
    v = _number(features, t.feature)
    return (
        t.bound is not None and v >= t.bound and all(_number(features, f) >= b for f, b in t.require.items())
    )


def _fires(t: Trigger, conf: MotionConfig, old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if t.kind == "tier_up":
        rank = {lv.name: i for i, lv in enumerate(conf.tiers.levels)}  # best first
        before = rank.get(old["tier"], len(rank)) if old else len(rank)
        return new["tier"] in t.tiers and rank.get(new["tier"], len(rank)) < before
    if t.kind == "route_into":
        return new["route"] in t.routes and (old is None or old["route"] != new["route"])
    if t.kind == "score_drop":
        return old is not None and t.bound is not None and old["score"] - new["score"] >= t.bound
    return _reached(t, new["features"]) and (old is None or not _reached(t, old["features"]))


def trend(old: dict[str, Any] | None, new: dict[str, Any], k: int = 3) -> list[dict[str, Any]]:
    """The reasons whose contribution changed most between the two scores (a reason not shown counts 0; both
    scores' reasons worded)."""
    before = {r["feature"]: r for r in (old or {}).get("reasons", [])}
    after = {r["feature"]: r for r in new.get("reasons", [])}
    changes = []
    for f in before.keys() | after.keys():
        b, a = before.get(f), after.get(f)
        delta = (a["contribution"] if a else 0.0) - (b["contribution"] if b else 0.0)
        changes.append({"feature": f, "text": (a or b)["text"], "was": b["contribution"] if b else 0.0,  # type: ignore[index]
                        "now": a["contribution"] if a else 0.0, "change": round(delta, 4)})  # fmt: skip
    return sorted(changes, key=lambda c: (-abs(c["change"]), c["feature"]))[:k]


def fired(
    conf: MotionConfig,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    now: float | None = None,
    word: Words = list,
) -> list[Fired]:
    """``old`` and ``new``: {entity_id, account_id, score, tier, route, sla_minutes, owner, features, reasons}
    (``old`` None: never scored). Each trigger that the change makes, with its notification. ``word``: the
    reasons as a notification shows them (``model.reasons.worded``: scores keep theirs unworded)."""
    now = time.time() if now is None else now
    out = []
    reasons: list[dict[str, Any]] | None = None  # worded once, when a first trigger fires
    changed: list[dict[str, Any]] = []
    for t in conf.triggers:
        if not _fires(t, conf, old, new):
            continue
        if reasons is None:
            reasons = word(new.get("reasons", []))
            changed = trend({"reasons": word((old or {}).get("reasons", []))}, {"reasons": reasons})
        window = int(now // (t.window_hours * 3600))
        sla = new.get("sla_minutes")
        body = {
            "trigger": t.name,
            "kind": t.kind,
            "motion": conf.motion,
            "entity_id": new["entity_id"],
            "account_id": new.get("account_id"),
            "at": round(now, 3),
            "score": {"old": old["score"] if old else None, "new": new["score"]},
            "tier": {"old": old["tier"] if old else None, "new": new["tier"]},
            "route": {"old": old["route"] if old else None, "new": new["route"]},
            "owner": new.get("owner"),
            "sla_minutes": sla,
            "sla_deadline": round(now + 60 * sla, 3) if sla is not None else None,
            "reasons": reasons,
            "trend": changed,
        }
        if t.kind == "feature_at_least":
            body["feature"] = {
                "name": t.feature,
                "value": _number(new["features"], t.feature),
                "bound": t.bound,
            }
        key = f"{conf.motion}:{new['entity_id']}:{t.name}:{window}"
        out.append(Fired(t, key, body))
    return out
