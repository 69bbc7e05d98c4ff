"""Business rules applied after prediction: routes, owners, SLAs, next actions, stage gates, grades.

Plain functions over scores and feature values, configured by conf/<motion>.yaml and tested without a server.
B2B routes by tier and account ownership with stage gates; B2C automates first, respects consent and an
expected-value floor; hybrid routes early stages B2C-style and later stages with B2B rigor.

``decide_columns`` (``decide_many``: the same, one decision per row) takes a batch as columns and evaluates each
condition once for the whole batch (one lead is a batch of one).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from features.frames import STAGE_RANK
from leadscore import motions
from leadscore.config import Condition, MotionConfig, Route


@dataclass
class RouteDecision:
    route: str
    owner: str | None
    sla_minutes: int | None
    actions: list[str]
    gates: list[dict[str, Any]] = field(default_factory=list)
    grade: str | None = None
    fit_score: int | None = None
    engagement_score: int | None = None


Column = Sequence[Any] | np.ndarray  # one value per row of a batch

OPS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


def _num(v: Any) -> float:
    """A feature value as a number; NaN where it is missing or not a number."""
    if v is None or isinstance(v, str):
        return math.nan
    return float(v)


@dataclass
class Batch:
    """What the rules read, as columns of one length: features, tiers, expected values, stages, consent."""

    n: int
    features: Mapping[str, Column]
    tier: Column
    expected_value: np.ndarray
    stage: np.ndarray  # stage rank
    consent_email: np.ndarray  # bool
    consent_sms: np.ndarray

    def values(self, feature: str) -> Column:
        v = self.features.get(feature)
        return [None] * self.n if v is None else v


def compare(values: Column, op: str, b: Any) -> np.ndarray:
    """``value op b`` per row; a missing value never holds. Against a number, a value that is not one is missing."""
    if isinstance(b, int | float) and not isinstance(b, bool):
        a = (
            values.astype(np.float64, copy=False)
            if isinstance(values, np.ndarray) and values.dtype.kind in "fiub"
            else np.fromiter((_num(v) for v in values), dtype=np.float64, count=len(values))
        )
        return OPS[op](a, b) & ~np.isnan(a)  # NaN compares False but for !=; missing never holds
    f = OPS[op]
    return np.fromiter((v is not None and bool(f(v, b)) for v in values), dtype=bool, count=len(values))


def holds(c: Condition, b: Batch) -> np.ndarray:
    """Where one condition holds (features, tier, stage, consent, expected value)."""
    parts = []
    if c.feature is not None:
        parts.append(compare(b.values(c.feature), c.op, c.value))
    if c.tier is not None:
        tiers = set(c.tier)
        parts.append(np.fromiter((t in tiers for t in b.tier), dtype=bool, count=b.n))
    if c.stage_at_least is not None:
        parts.append(b.stage >= STAGE_RANK[c.stage_at_least])
    if c.stage_below is not None:
        parts.append(b.stage < STAGE_RANK[c.stage_below])
    if c.consent is not None:
        email, sms = b.consent_email, b.consent_sms
        parts.append({"none": ~email & ~sms, "any": email | sms, "email": email, "sms": sms}[c.consent])
    if c.expected_value_below is not None:
        parts.append(b.expected_value < c.expected_value_below)
    return _all(parts, b.n)


def _all(masks: list[np.ndarray], n: int) -> np.ndarray:
    if not masks:
        return np.ones(n, dtype=bool)
    m = masks[0]
    for other in masks[1:]:
        m = m & other
    return m


def all_hold(conditions: list[Condition], b: Batch) -> np.ndarray:
    return _all([holds(c, b) for c in conditions], b.n)


def pick_routes(routes: list[Route], b: Batch) -> np.ndarray:
    """Per row, the index of the first route whose conditions all hold (the last route otherwise)."""
    chosen = np.full(b.n, len(routes) - 1, dtype=np.int64)
    open_ = np.ones(b.n, dtype=bool)
    for k, r in enumerate(routes[:-1]):
        m = open_ & all_hold(r.when, b)
        chosen[m] = k
        open_ &= ~m
    return chosen


def owner_for(route: Route, account: dict[str, Any] | None) -> str | None:
    account = account or {}
    if route.owner == "account_owner":
        return account.get("owner_id") or (
            f"queue:{account['territory']}" if account.get("territory") else "queue:unassigned"
        )
    if route.owner == "territory_queue":
        return f"queue:{account.get('territory') or 'unassigned'}"
    return None


def stage_gates(conf: MotionConfig, b: Batch) -> list[list[dict[str, Any]]]:
    """Per row, for each gate stage beyond the row's current one: passed, or the evidence still missing. Rows
    with the same stage and the same gates passed share one (read-only) list: each distinct case is built once."""
    if not conf.gates:
        return [[] for _ in range(b.n)]
    ok = np.stack([all_hold(g.require, b) for g in conf.gates], axis=1)
    case = b.stage.astype(np.int64) << len(conf.gates) | (
        ok.astype(np.int64) << np.arange(len(conf.gates))
    ).sum(axis=1)
    _, first, which = np.unique(case, return_index=True, return_inverse=True)
    built = [_gates(conf, int(b.stage[i]), ok[i].tolist()) for i in first.tolist()]
    return [built[k] for k in which.tolist()]


def _gates(conf: MotionConfig, current: int, passed: list[bool]) -> list[dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for g, ok in zip(conf.gates, passed, strict=True):
        if STAGE_RANK[g.stage] <= current:
            continue
        entry = entries.setdefault(g.stage, {"stage": g.stage, "ready": True, "missing": []})
        if not ok:
            entry["ready"] = False
            entry["missing"].append(g.missing)
    return list(entries.values())


def grades(conf: MotionConfig, groups: Mapping[str, Column], n: int) -> tuple[list, list, list]:
    """B2B fit × engagement grades (A1 … D4) from the model's own per-group contributions (log-odds)."""
    if not any(g in groups for g in ("fit", "intent", "engagement")):
        return [None] * n, [None] * n, [None] * n

    def group(name: str) -> np.ndarray:
        return np.asarray(groups[name], dtype=np.float64) if name in groups else np.zeros(n)

    fit = np.round(100 / (1 + np.exp(-group("fit")))).astype(np.int64)
    eng = np.round(100 / (1 + np.exp(-(group("intent") + group("engagement"))))).astype(np.int64)
    fc, ec = conf.grade.fit_cutoffs, conf.grade.engagement_cutoffs
    # the letter counts the fit cutoffs above the fit score, the digit the engagement cutoffs above it
    letter = (fit[:, None] < np.asarray(fc, dtype=np.float64)[None, :]).sum(axis=1)
    digit = (eng[:, None] < np.asarray(ec, dtype=np.float64)[None, :]).sum(axis=1)
    names = np.array([f"{a}{d}" for a in "ABCD"[: len(fc) + 1] for d in range(1, len(ec) + 2)], dtype=object)
    return names[letter * (len(ec) + 1) + digit].tolist(), fit.tolist(), eng.tolist()


def _consent(given: Sequence[bool | None] | None, feature: Column | None, n: int) -> np.ndarray:
    """The request's consent where it gives one, else the consent feature; missing (or NaN) is no consent."""
    given = given if given is not None else [None] * n
    feature = feature if feature is not None else [None] * n
    return np.fromiter(
        (
            bool(g) if g is not None else (f is not None and f == f and bool(f))
            for g, f in zip(given, feature, strict=True)
        ),
        dtype=bool,
        count=n,
    )


def route_names(
    conf: MotionConfig,
    *,
    tiers: Column,
    features: Mapping[str, Column],
    expected_value: Column,
    stages: Sequence[str | None] | None = None,
    consent_email: Sequence[bool | None] | None = None,
    consent_sms: Sequence[bool | None] | None = None,
) -> np.ndarray:
    """Each row's route name, as a column (batch scoring writes only the route: no decision per row)."""
    n = len(tiers)
    ranks = (np.zeros(n, dtype=np.int64) if stages is None else
             np.fromiter((STAGE_RANK.get(s or "none", 0) for s in stages), dtype=np.int64, count=n))  # fmt: skip
    b = Batch(
        n, features, tiers, np.asarray(expected_value, dtype=np.float64), ranks,
        _consent(consent_email, features.get("lifecycle_consent_email"), n),
        _consent(consent_sms, features.get("lifecycle_consent_sms"), n),
    )  # fmt: skip
    return np.asarray([r.name for r in conf.routes], dtype=object)[pick_routes(conf.routes, b)]


def decide_many(
    conf: MotionConfig,
    *,
    tiers: Column,
    features: Mapping[str, Column],
    expected_value: Column,
    groups: Mapping[str, Column] | None = None,
    stages: Sequence[str | None] | None = None,
    accounts: Sequence[dict[str, Any] | None] | None = None,
    consent_email: Sequence[bool | None] | None = None,
    consent_sms: Sequence[bool | None] | None = None,
) -> list[RouteDecision]:
    """Route, owner, SLA, actions, gates and grade for each row of a batch given as columns, one decision per
    row (``decide_columns``'s columns, row by row)."""
    acc = [a or {} for a in accounts] if accounts is not None else None
    cols = decide_columns(
        conf, tiers=tiers, features=features, expected_value=expected_value, groups=groups, stages=stages,
        owner_id=[a.get("owner_id") for a in acc] if acc is not None else None,
        territory=[a.get("territory") for a in acc] if acc is not None else None,
        consent_email=consent_email, consent_sms=consent_sms,
    )  # fmt: skip
    columns = (
        "route",
        "owner",
        "sla_minutes",
        "next_actions",
        "gates",
        "grade",
        "fit_score",
        "engagement_score",
    )
    return [
        RouteDecision(route, owner, sla, list(actions), gates, grade, fit, eng)
        for route, owner, sla, actions, gates, grade, fit, eng in zip(
            *(cols[c] for c in columns), strict=True
        )
    ]


def decide_columns(
    conf: MotionConfig,
    *,
    tiers: Column,
    features: Mapping[str, Column],
    expected_value: Column,
    groups: Mapping[str, Column] | None = None,
    stages: Sequence[str | None] | None = None,
    owner_id: Sequence[str | None] | None = None,
    territory: Sequence[str | None] | None = None,
    consent_email: Sequence[bool | None] | None = None,
    consent_sms: Sequence[bool | None] | None = None,
) -> dict[str, list]:
    """Route, owner, SLA, next actions, gates, grade, fit and engagement scores of each row, as columns: each
    condition is evaluated once for the batch, and rows with the same route share its actions list (read-only)."""
    n = len(tiers)
    stages = stages if stages is not None else [None] * n
    b = Batch(
        n,
        features,
        tiers,
        np.asarray(expected_value, dtype=np.float64),
        np.fromiter((STAGE_RANK.get(s or "none", 0) for s in stages), dtype=np.int64, count=n),
        _consent(consent_email, features.get("lifecycle_consent_email"), n),
        _consent(consent_sms, features.get("lifecycle_consent_sms"), n),
    )
    routes = conf.routes
    pick = pick_routes(routes, b)
    actions = [list(r.actions) for r in routes]
    out: dict[str, list] = {
        "route": np.asarray([r.name for r in routes], dtype=object)[pick].tolist(),
        "owner": _owner_column(routes, pick, owner_id, territory, n),
        "sla_minutes": np.asarray([r.sla_minutes for r in routes], dtype=object)[pick].tolist(),
        "next_actions": [actions[k] for k in pick.tolist()],
    }
    if motions.get(conf.motion).family == "b2b":
        out["gates"] = stage_gates(conf, b)
        out["grade"], out["fit_score"], out["engagement_score"] = (
            grades(conf, groups, n) if groups else ([None] * n, [None] * n, [None] * n)
        )
    else:
        out["gates"] = [[] for _ in range(n)]
        out["grade"] = out["fit_score"] = out["engagement_score"] = [None] * n
    return out


def _owner_column(
    routes: Sequence[Route],
    pick: np.ndarray,
    owner_id: Sequence[str | None] | None,
    territory: Sequence[str | None] | None,
    n: int,
) -> list[str | None]:
    """``owner_for`` each row's route, computed for the rows of routes that name an owner only."""
    out: list[str | None] = [None] * n
    owners, places = owner_id or [None] * n, territory or [None] * n
    for k, r in enumerate(routes):
        if r.owner not in ("account_owner", "territory_queue"):
            continue
        for i in np.flatnonzero(pick == k).tolist():
            out[i] = owner_for(r, {"owner_id": owners[i], "territory": places[i]})
    return out
