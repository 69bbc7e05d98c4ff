"""Business rules applied after prediction: routes, owners, SLAs, next actions, stage gates, grades.

Plain functions over a score and the feature values, configured by conf/<motion>.yaml and tested without a
server. B2B routes by tier and account ownership with stage gates; B2C automates first, respects consent and
an expected-value floor; hybrid routes early stages B2C-style and later stages with B2B rigor.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

from features.compute import STAGE_RANK
from leadscore.config import Condition, MotionConfig, Route


@dataclass
class Decision:
    route: str
    owner: str | None
    sla_minutes: int | None
    actions: list[str]
    gates: list[dict[str, Any]] = field(default_factory=list)
    grade: str | None = None
    fit_score: int | None = None
    engagement_score: int | None = None


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, str):
        return None
    f = float(v)
    return None if math.isnan(f) else f


OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne}


def _compare(a: Any, op: str, b: Any) -> bool:
    if a is None:
        return False
    if isinstance(b, int | float) and not isinstance(b, bool):
        a = _num(a)
        if a is None:
            return False
    return OPS[op](a, b)


def holds(c: Condition, ctx: dict[str, Any]) -> bool:
    """One condition against the scoring context (features, tier, stage, consent, expected value)."""
    if c.feature is not None and not _compare(ctx["features"].get(c.feature), c.op, c.value):
        return False
    if c.tier is not None and ctx["tier"] not in c.tier:
        return False
    stage = STAGE_RANK.get(ctx.get("stage") or "none", 0)
    if c.stage_at_least is not None and stage < STAGE_RANK[c.stage_at_least]:
        return False
    if c.stage_below is not None and stage >= STAGE_RANK[c.stage_below]:
        return False
    if c.consent is not None:
        email, sms = bool(ctx.get("consent_email")), bool(ctx.get("consent_sms"))
        want = {"none": not email and not sms, "any": email or sms, "email": email, "sms": sms}[c.consent]
        if not want:
            return False
    if c.expected_value_below is not None and not (ctx.get("expected_value", 0.0) < c.expected_value_below):
        return False
    return True


def pick_route(routes: list[Route], ctx: dict[str, Any]) -> Route:
    for r in routes:
        if all(holds(c, ctx) for c in r.when):
            return r
    return routes[-1]


def owner_for(route: Route, account: dict[str, Any] | None) -> str | None:
    account = account or {}
    if route.owner == "account_owner":
        return account.get("owner_id") or (f"queue:{account['territory']}" if account.get("territory") else "queue:unassigned")
    if route.owner == "territory_queue":
        return f"queue:{account.get('territory') or 'unassigned'}"
    return None


def stage_gates(conf: MotionConfig, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """For each gate stage beyond the lead's current one: passed, or the evidence still missing."""
    current = STAGE_RANK.get(ctx.get("stage") or "none", 0)
    out: dict[str, dict[str, Any]] = {}
    for g in conf.gates:
        if STAGE_RANK[g.stage] <= current:
            continue
        entry = out.setdefault(g.stage, {"stage": g.stage, "ready": True, "missing": []})
        if not all(holds(c, ctx) for c in g.require):
            entry["ready"] = False
            entry["missing"].append(g.missing)
    return list(out.values())


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def grade(conf: MotionConfig, groups: dict[str, float]) -> tuple[str | None, int | None, int | None]:
    """B2B fit × engagement grade (A1 … D4) from the model's own per-group contributions."""
    if not any(g in groups for g in ("fit", "intent", "engagement")):
        return None, None, None
    fit = round(100 * _sigmoid(groups.get("fit", 0.0)))
    eng = round(100 * _sigmoid(groups.get("intent", 0.0) + groups.get("engagement", 0.0)))
    letter = "ABCD"[sum(fit < c for c in conf.grade.fit_cutoffs)]
    digit = 1 + sum(eng < c for c in conf.grade.engagement_cutoffs)
    return f"{letter}{digit}", fit, eng


def decide(conf: MotionConfig, *, tier: str, features: dict[str, Any], expected_value: float,
           groups: dict[str, float] | None = None, stage: str | None = None,
           account: dict[str, Any] | None = None, consent_email: bool | None = None,
           consent_sms: bool | None = None) -> Decision:
    ctx = {"tier": tier, "features": features, "expected_value": expected_value, "stage": stage,
           "consent_email": consent_email if consent_email is not None else features.get("lifecycle_consent_email"),
           "consent_sms": consent_sms if consent_sms is not None else features.get("lifecycle_consent_sms")}
    route = pick_route(conf.routes, ctx)
    d = Decision(route.name, owner_for(route, account), route.sla_minutes, list(route.actions))
    if conf.motion != "b2c":
        d.gates = stage_gates(conf, ctx)
        if groups:
            d.grade, d.fit_score, d.engagement_score = grade(conf, groups)
    return d
