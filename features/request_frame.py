"""The request part of an online frame: requests — payload dicts (``/score``, ``/score_batch``) or a
``RequestTable`` of columns (``/score_columns``) — turned into the arrays of a B2B frame and assembled with the
stored contexts; and the array helpers both motions' frames use. The columnar builder gives exactly the arrays
the payload builder gives for the same requests (tested through the scorer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.contexts import B2BContext
from features.frames import B2B_CODE, ROLE_CODE, STAGE_RANK, B2BFrame, object_array, spans
from features.prepare import SENIORITY_RANK
from leadscore import motions
from leadscore.errors import ItemError, UserError
from leadscore.times import epoch_seconds


def number(v: Any) -> float:
    return float("nan") if v is None else float(v)


NO_ROW = np.array([-1], dtype=np.int64)  # appended to a row map: where an index points past the rows, -1


def join_arrays(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate((a, b)) if len(b) else a


def context_column(parts: list, name: str) -> np.ndarray:
    """One field of the batch's contexts end to end (a lone context's own, read-only, array as it is); the
    decoded arrays already have the frame's dtypes."""
    if len(parts) == 1:
        return getattr(parts[0], name)
    return np.concatenate([getattr(p, name) for p in parts])


@dataclass
class RequestTable:
    """Requests of one motion given as columns (``POST /score_columns``): value i of every column of ``entity``
    (the leads, or the customers) and of ``account`` belongs to request i; events and orders name their request
    by their ``row`` column. Times are epoch seconds (int64 arrays); absent optional columns are absent keys, a
    missing value is None."""

    motion: str
    entity: dict[str, list]
    account: dict[str, list] | None = None
    events: dict[str, list] | None = None
    orders: dict[str, list] | None = None

    @property
    def n(self) -> int:
        return len(next(iter(self.entity.values())))

    def payloads(self) -> list[dict]:
        """The requests as the payload dicts the item-by-item path reads (events and orders in row order)."""
        n, m = self.n, motions.get(self.motion)
        accounts = records(self.account, n) if self.account else [None] * n
        events, orders = _grouped(self.events, n), _grouped(self.orders, n)
        return [
            {
                "motion": self.motion,
                "lead": None,
                "customer": None,
                m.request_field: e,
                "account": a,
                "events": ev,
                "orders": o,
            }  # fmt: skip
            for e, a, ev, o in zip(records(self.entity, n), accounts, events, orders, strict=True)
        ]


def records(columns: dict[str, list], n: int) -> list[dict]:
    """Columns of ``n`` values as one dict per row."""
    names = list(columns)
    return (
        [dict(zip(names, r, strict=True)) for r in zip(*columns.values(), strict=True)] if names else [{}] * n
    )


def _grouped(columns: dict[str, list] | None, n: int) -> list[list[dict]]:
    """Rows of a child table (events, orders) grouped by their ``row``, None values left out (as absent keys)."""
    out: list[list[dict]] = [[] for _ in range(n)]
    if not columns:
        return out
    names = [c for c in columns if c != "row"]
    for i, values in zip(columns["row"], zip(*(columns[c] for c in names), strict=True), strict=True):
        out[i].append({k: v for k, v in zip(names, values, strict=True) if v is not None})
    return out


@dataclass
class _B2BRequests:
    """The request part of a B2B frame: row i is request i's lead (and account); its new events after."""

    created: np.ndarray
    role: np.ndarray
    seniority: np.ndarray
    business: np.ndarray
    stage: np.ndarray
    old: np.ndarray  # the lead's row in its account's stored context, -1 if none
    industry: np.ndarray
    employees: np.ndarray
    revenue: np.ndarray
    region: np.ndarray
    ev_ts: np.ndarray
    ev_type: np.ndarray
    ev_lead: np.ndarray
    ev_account: np.ndarray
    ev_topic: np.ndarray
    topics: dict[str, int]


def b2b_assemble(r: _B2BRequests, ctxs: list[B2BContext]) -> B2BFrame:
    """The frame: rows 0..n-1 the request leads; then each account's other stored contacts. Events: the
    stored ones, then the requests' new ones."""
    n, old, topics = len(r.created), r.old, r.topics
    # The stored contacts, all accounts at once; a stored copy of a request lead becomes the request's row.
    start, owner = spans([len(c.lead_ints) for c in ctxs])
    kept = np.ones(len(owner), dtype=bool)
    kept[(start + old)[old >= 0]] = False
    lead_row = join_arrays(np.where(kept, n + np.cumsum(kept) - 1, owner), NO_ROW)
    _, ev_owner = spans([len(c.events) for c in ctxs])
    events = context_column(ctxs, "events")
    local = events[:, 2]
    ev_lead = lead_row[np.where(local >= 0, start[ev_owner] + local, len(lead_row) - 1)]
    t_start, _ = spans([len(c.topics) for c in ctxs])
    codes = np.array([topics.setdefault(t, len(topics)) for c in ctxs for t in c.topics] + [-1], np.int64)
    local = events[:, 3]
    ev_topic = codes[np.where(local >= 0, t_start[ev_owner] + local, len(codes) - 1)]
    ints, floats = context_column(ctxs, "lead_ints")[kept], context_column(ctxs, "lead_floats")[kept]
    return B2BFrame(
        lead_account=join_arrays(np.arange(n), owner[kept]),
        lead_created=np.concatenate((r.created, ints[:, 0])),
        lead_role=np.concatenate((r.role, ints[:, 1])),
        lead_seniority=np.concatenate((r.seniority, floats[:, 0])),
        lead_business=np.concatenate((r.business, floats[:, 1])),
        lead_stage=np.concatenate((r.stage, ints[:, 2])),
        acc_industry=r.industry,
        acc_employees=r.employees,
        acc_revenue=r.revenue,
        acc_region=r.region,
        ev_ts=np.concatenate((events[:, 0], r.ev_ts)),
        ev_type=np.concatenate((events[:, 1].astype(np.int8), r.ev_type)),
        ev_lead=join_arrays(ev_lead, r.ev_lead),
        ev_account=join_arrays(ev_owner, r.ev_account),
        ev_topic=join_arrays(ev_topic, r.ev_topic),
        ev_pos=np.full(len(ev_owner) + len(r.ev_ts), -1, dtype=np.int64),
    )


def b2b_from_payloads(payloads: list[dict], ctxs: list[B2BContext]) -> _B2BRequests:
    """The request part, request by request (``POST /score``, ``/score_batch``)."""
    n = len(payloads)
    req: dict[str, list[Any]] = {k: [] for k in ("created", "role", "seniority", "business", "stage")}
    acc: dict[str, list[Any]] = {k: [] for k in ("industry", "employees", "revenue", "region")}
    ev: dict[str, list[Any]] = {k: [] for k in ("ts", "type", "lead", "account", "topic")}
    old = np.full(n, -1, dtype=np.int64)
    topics: dict[str, int] = {}
    add_each(payloads, ctxs, lambda i, p, c: _b2b_request(i, p, c, req, acc, ev, old, topics))
    return _B2BRequests(
        np.array(req["created"], np.int64), np.array(req["role"], np.int64),
        np.array(req["seniority"], np.float64), np.array(req["business"], np.float64),
        np.array(req["stage"], np.int64), old, object_array(acc["industry"]),
        np.array(acc["employees"], np.float64), np.array(acc["revenue"], np.float64), object_array(acc["region"]),
        np.array(ev["ts"], np.int64), np.array(ev["type"], np.int8), np.array(ev["lead"], np.int64),
        np.array(ev["account"], np.int64), np.array(ev["topic"], np.int64), topics,
    )  # fmt: skip


def b2b_from_columns(t: RequestTable, ctxs: list[B2BContext]) -> _B2BRequests:
    """The request part from columns, a column at a time: the same values ``b2b_from_payloads`` gives for the
    same requests (absent values take the request model's defaults: buying role unknown, business email)."""
    lead, n = t.entity, t.n
    ids = lead["lead_id"]
    nothing = [None] * n

    def col(table: dict[str, list] | None, name: str) -> list:
        return (table or {}).get(name) or nothing

    old = np.fromiter((c.lead_row.get(me, -1) for c, me in zip(ctxs, ids, strict=True)), np.int64, n)
    unknown = ROLE_CODE["unknown"]
    stage = [
        STAGE_RANK[s] if s else (int(c.stage[j]) if j >= 0 else 0)
        for s, c, j in zip(col(lead, "stage"), ctxs, old.tolist(), strict=True)
    ]
    account = {
        k: [v if v is not None else c.account.get(k) for v, c in zip(col(t.account, k), ctxs, strict=True)]
        for k in ("industry", "employee_count", "annual_revenue", "region")
    }
    ev = t.events or {}
    keep = _new_columnar_events(ev, ctxs)
    at = np.asarray(ev.get("row", []), dtype=np.int64)[keep]
    types = np.asarray(ev.get("type", []), dtype=object)[keep]
    code = np.fromiter(map(B2B_CODE.__getitem__, types.tolist()), np.int8, len(keep))
    own = code != B2B_CODE["third_party_intent"]  # account-level intent names no lead
    if ev.get("lead_id"):
        named = np.asarray(ev["lead_id"], dtype=object)[keep]
        own &= (named == None) | (named == np.asarray(ids, dtype=object)[at])  # noqa: E711 (elementwise)
    topics: dict[str, int] = {}
    topic = np.full(len(keep), -1, dtype=np.int64)
    if ev.get("topic"):
        given = np.asarray(ev["topic"], dtype=object)[keep]
        for k in np.flatnonzero(given != None).tolist():  # noqa: E711 (elementwise)
            topic[k] = topics.setdefault(given[k], len(topics))
    return _B2BRequests(
        created=np.asarray(lead["created_at"], dtype=np.int64),
        role=np.fromiter((ROLE_CODE.get(x or "unknown", unknown) for x in col(lead, "buying_role")), np.int64, n),
        seniority=np.fromiter((SENIORITY_RANK.get(x or "", np.nan) for x in col(lead, "seniority")), np.float64, n),
        business=np.fromiter((x in (None, "business") for x in col(lead, "email_domain_type")), np.float64, n),
        stage=np.array(stage, np.int64),
        old=old,
        industry=object_array(account["industry"]),
        employees=np.array([number(v) for v in account["employee_count"]], np.float64),
        revenue=np.array([number(v) for v in account["annual_revenue"]], np.float64),
        region=object_array(account["region"]),
        ev_ts=np.asarray(ev.get("ts", []), dtype=np.int64)[keep],
        ev_type=code,
        ev_lead=np.where(own, at, -1),
        ev_account=at,
        ev_topic=topic,
        topics=topics,
    )  # fmt: skip


def _new_columnar_events(ev: dict[str, list], ctxs: list[Any]) -> np.ndarray:
    """The positions of the events the requests add (request by request, each in its own order, as the
    payload path keeps them): not in their entity's stored context, each id once per request. Rows whose ids
    are all new and distinct are taken whole; only the others are looked at event by event."""
    rows = np.asarray(ev.get("row", []), dtype=np.int64)
    if not len(rows):
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    ids = np.asarray(ev["event_id"], dtype=object)[order].tolist()
    sorted_rows = rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    ends = np.r_[starts[1:], len(order)]
    drop: list[int] = []
    for s, e, i in zip(starts.tolist(), ends.tolist(), sorted_rows[starts].tolist(), strict=True):
        mine, stored = ids[s:e], ctxs[i].event_ids
        if len(set(mine)) == len(mine) and stored.isdisjoint(mine):
            continue
        seen: set[str] = set(stored)
        for k in range(s, e):
            if ids[k] in seen:
                drop.append(k)
            seen.add(ids[k])
    return np.delete(order, drop) if drop else order


def _b2b_request(
    i: int,
    payload: dict,
    c: B2BContext,
    req: dict,
    acc: dict,
    ev: dict,
    old: np.ndarray,
    topics: dict[str, int],
) -> None:
    """Request i's lead (row i), its account fields over the stored ones, and its events the context lacks."""
    lead = payload["lead"]
    a = dict(c.account)
    a.update({k: v for k, v in (payload.get("account") or {}).items() if v is not None})
    acc["industry"].append(a.get("industry"))
    acc["employees"].append(number(a.get("employee_count")))
    acc["revenue"].append(number(a.get("annual_revenue")))
    acc["region"].append(a.get("region"))
    me = lead["lead_id"]
    j = old[i] = c.lead_row.get(me, -1)
    req["created"].append(epoch_seconds(lead["created_at"]))
    req["role"].append(ROLE_CODE.get(lead.get("buying_role") or "unknown", ROLE_CODE["unknown"]))
    req["seniority"].append(SENIORITY_RANK.get(lead.get("seniority") or "", np.nan))
    req["business"].append(float(lead.get("email_domain_type") == "business"))
    req["stage"].append(
        STAGE_RANK[lead["stage"]] if lead.get("stage") else (int(c.stage[j]) if j >= 0 else 0)
    )
    for e in new_events(payload.get("events"), c.event_ids):
        ev["ts"].append(epoch_seconds(e["ts"]))
        ev["type"].append(B2B_CODE[e["type"]])
        ev["lead"].append(
            i if e.get("lead_id", me) in (me, None) and e.get("type") != "third_party_intent" else -1
        )
        ev["account"].append(i)
        t = e.get("topic")
        ev["topic"].append(topics.setdefault(t, len(topics)) if t is not None else -1)


def new_events(events: list[dict] | None, stored_ids: frozenset[str]) -> list[dict]:
    """The request's events that the stored context does not hold, each event id once (the first), as the
    batch path keeps them: a webhook that repeats an event does not count it twice."""
    if not events:
        return []
    seen: set[str | None] = set(stored_ids)
    out = []
    for e in events:
        k = e.get("event_id")
        if k is None or k not in seen:
            seen.add(k)
            out.append(e)
    return out


def add_each(payloads: list[dict], ctxs: list[Any], add: Callable[[int, dict, Any], None]) -> None:
    """Add each request (with its stored context) to the batch frame's lists; a bad one raises ItemError."""
    for i, (payload, ctx) in enumerate(zip(payloads, ctxs, strict=True)):
        try:
            add(i, payload, ctx)
        except (KeyError, TypeError, ValueError, UserError) as exc:
            raise ItemError(i, _message(exc)) from None


def _message(exc: Exception) -> str:
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"{exc.args[0]}: unknown or missing value"
    return str(exc)
