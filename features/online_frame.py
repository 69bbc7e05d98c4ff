"""Online features: leads (or customers) at request time, from the request payloads plus their stored contexts.

A batch of requests becomes one frame with one pseudo-account (or customer) per request — the stored context
with the request merged over it (payload wins; events deduplicated by id) — and the *same* ``features.compute``
functions run on it, so online and historical values are identical for the same entity and as-of. No pandas on
this path: only the request's own fields and events are handled item by item, the stored part of the frame is
assembled with whole-batch array operations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.compute import compute
from features.contexts import B2BContext, B2CContext, ContextMemo
from features.definitions import FeatureSet, feature_set
from features.frames import B2B_CODE, B2C_CODE, ROLE_CODE, STAGE_RANK, B2BFrame, B2CFrame
from features.online_store import OnlineStore
from features.point_in_time import restrict
from features.prepare import SENIORITY_RANK
from leadscore import motions
from leadscore.config import MotionConfig
from leadscore.errors import ItemError, UserError
from leadscore.times import epoch_seconds


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


class OnlineFeatures:
    """Computes entities' features for a motion from request payloads and the online store.

    The shared ``compute`` runs once for a whole batch; stored contexts come decoded from a ``ContextMemo`` of
    ``memo_mb`` megabytes.
    """

    def __init__(
        self, conf: MotionConfig, store: OnlineStore | None, fs: FeatureSet | None = None, memo_mb: float = 64
    ):
        self.conf = conf
        self.fs = fs or feature_set(conf.feature_set)
        self.memo = ContextMemo(conf.motion, store, memo_mb)

    def compute(self, payload: dict, as_of: int) -> dict[str, Any]:
        try:
            return self.compute_many([payload], as_of)[0]
        except ItemError as exc:
            raise UserError(str(exc)) from None

    def compute_many(self, payloads: list[dict], as_of: int) -> list[dict[str, Any]]:
        """One dict of feature values per payload, all as of ``as_of``; a bad payload raises ItemError."""
        return rows_of(self.compute_columns(payloads, as_of)) if payloads else []

    def compute_columns(
        self, payloads: list[dict], as_of: int, degraded: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The feature values of the payloads as columns (row i: payload i); a bad payload raises ItemError.
        ``degraded`` gets "online_store" when the stored contexts could not be read (scored without them)."""
        if not payloads:
            raise ValueError("compute_columns needs at least one payload")
        whole: B2BFrame | B2CFrame
        if motions.get(self.conf.motion).family == "b2c":
            whole = self._b2c_frame(payloads, degraded)
            n = whole.n
        else:
            whole = self._b2b_frame(payloads, degraded)
            n = whole.n_leads
        return self._rows(whole, n, len(payloads), as_of)

    def _rows(self, whole: B2BFrame | B2CFrame, n: int, requests: int, as_of: int) -> dict[str, np.ndarray]:
        """The features of the frame's first ``requests`` entities (request i is row i: its lead, or its
        customer) as of ``as_of``."""
        fr, keep = restrict(whole, as_of)
        position = np.full(n, -1, dtype=np.int64)
        position[keep] = np.arange(len(keep))
        row = position[:requests]
        if (row < 0).any():
            i = int(np.flatnonzero(row < 0)[0])
            raise ItemError(i, f"the entity was created after as_of ({as_of}); nothing to score yet")
        return {k: v[row] for k, v in compute(fr, as_of, self.conf, self.fs).items()}

    def _contexts(self, keys: list[str], degraded: list[str] | None) -> list[Any]:
        contexts, failed = self.memo.read(keys)
        if failed and degraded is not None:
            degraded.append("online_store")
        return contexts

    def _b2b_frame(self, payloads: list[dict], degraded: list[str] | None) -> B2BFrame:
        """Rows 0..n-1: the request leads; then each account's other stored contacts. Events: the stored ones,
        then the request's new ones."""
        ctxs: list[B2BContext] = self._contexts([str(p["lead"]["account_id"]) for p in payloads], degraded)
        return _b2b_assemble(_b2b_from_payloads(payloads, ctxs), ctxs)

    def compute_table(
        self, table: RequestTable, as_of: int, degraded: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """``compute_columns`` for requests given as columns (``POST /score_columns``): B2B and hybrid leads
        become the frame with whole-column operations (row i: lead i, the same frame the payload path builds);
        B2C customers go through their payloads. A bad row raises ItemError."""
        if motions.get(self.conf.motion).family == "b2c":
            return self.compute_columns(table.payloads(), as_of, degraded)
        lead = table.entity
        ctxs: list[B2BContext] = self._contexts([str(a) for a in lead["account_id"]], degraded)
        whole = _b2b_assemble(_b2b_from_columns(table, ctxs), ctxs)
        return self._rows(whole, whole.n_leads, table.n, as_of)

    def _b2c_frame(self, payloads: list[dict], degraded: list[str] | None) -> B2CFrame:
        """Customer i is request i; events and orders: the stored ones, then the request's new ones."""
        n = len(payloads)
        cust: dict[str, list[Any]] = {
            k: [] for k in ("created", "channel", "device", "consent_email", "consent_sms")
        }
        ev: dict[str, list[Any]] = {
            k: [] for k in ("ts", "type", "cust", "session", "category", "price", "qty")
        }
        orders: dict[str, list[Any]] = {k: [] for k in ("cust", "ts", "amount")}
        n_sessions = np.zeros(n, dtype=np.int64)
        categories: dict[str, int] = {}
        ctxs: list[B2CContext] = self._contexts(
            [str(p["customer"]["customer_id"]) for p in payloads], degraded
        )
        _add_each(
            payloads, ctxs, lambda i, p, c: _b2c_request(i, p, c, cust, ev, orders, n_sessions, categories)
        )
        session_base, _ = _spans(n_sessions.tolist())  # each customer's sessions get their own range of codes
        _, ev_owner = _spans([len(c.ev_ts) for c in ctxs])
        c_start, _ = _spans([len(c.categories) for c in ctxs])
        codes = np.array(
            [categories.setdefault(x, len(categories)) for c in ctxs for x in c.categories] + [-1], np.int64
        )
        local = _cat(ctxs, "ev_category")
        ev_category = codes[np.where(local >= 0, c_start[ev_owner] + local, len(codes) - 1)]
        _, ord_owner = _spans([len(c.ord_ts) for c in ctxs])

        def both(name: str, dtype, request: str) -> np.ndarray:
            return _join(_cat(ctxs, name), np.array(ev[request], dtype))

        return B2CFrame(
            cust_created=np.array(cust["created"], dtype=np.int64),
            cust_channel=_objects(cust["channel"]),
            cust_device=_objects(cust["device"]),
            cust_consent_email=np.array(cust["consent_email"], np.float64),
            cust_consent_sms=np.array(cust["consent_sms"], np.float64),
            ev_ts=both("ev_ts", np.int64, "ts"),
            ev_type=both("ev_type", np.int8, "type"),
            ev_cust=_join(ev_owner, np.array(ev["cust"], np.int64)),
            ev_pos=np.full(len(ev_owner) + len(ev["ts"]), -1, dtype=np.int64),
            ev_session=_join(
                session_base[ev_owner] + _cat(ctxs, "ev_session"),
                session_base[np.array(ev["cust"], np.int64)] + np.array(ev["session"], np.int64),
            ),
            ev_category=_join(ev_category, np.array(ev["category"], np.int64)),
            ev_price=both("ev_price", np.float64, "price"),
            ev_qty=both("ev_qty", np.float64, "qty"),
            ord_cust=_join(ord_owner, np.array(orders["cust"], np.int64)),
            ord_ts=_join(_cat(ctxs, "ord_ts"), np.array(orders["ts"], np.int64)),
            ord_amount=_join(_cat(ctxs, "ord_amount"), np.array(orders["amount"], np.float64)),
        )


def rows_of(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Columns of feature values as one dict of plain Python values per row."""
    lists = [v.tolist() for v in columns.values()]
    return [dict(zip(columns, r, strict=True)) for r in zip(*lists, strict=True)]


NO_ROW = np.array([-1], dtype=np.int64)  # appended to a row map: where an index points past the rows, -1


def _join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate((a, b)) if len(b) else a


def _spans(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """For parts of these lengths laid end to end: where each part starts, and the part of each element."""
    c = np.array(counts, dtype=np.int64)
    return np.cumsum(c) - c, np.repeat(np.arange(len(c)), c)


def _cat(parts: list, name: str) -> np.ndarray:
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


def _b2b_assemble(r: _B2BRequests, ctxs: list[B2BContext]) -> B2BFrame:
    """The frame: rows 0..n-1 the request leads; then each account's other stored contacts. Events: the
    stored ones, then the requests' new ones."""
    n, old, topics = len(r.created), r.old, r.topics
    # The stored contacts, all accounts at once; a stored copy of a request lead becomes the request's row.
    start, owner = _spans([len(c.created) for c in ctxs])
    kept = np.ones(len(owner), dtype=bool)
    kept[(start + old)[old >= 0]] = False
    lead_row = _join(np.where(kept, n + np.cumsum(kept) - 1, owner), NO_ROW)
    _, ev_owner = _spans([len(c.ev_ts) for c in ctxs])
    local = _cat(ctxs, "ev_lead")
    ev_lead = lead_row[np.where(local >= 0, start[ev_owner] + local, len(lead_row) - 1)]
    t_start, _ = _spans([len(c.topics) for c in ctxs])
    codes = np.array([topics.setdefault(t, len(topics)) for c in ctxs for t in c.topics] + [-1], np.int64)
    local = _cat(ctxs, "ev_topic")
    ev_topic = codes[np.where(local >= 0, t_start[ev_owner] + local, len(codes) - 1)]

    def stored(name: str, own: np.ndarray) -> np.ndarray:
        return _join(own, _cat(ctxs, name)[kept])

    return B2BFrame(
        lead_account=_join(np.arange(n), owner[kept]),
        lead_created=stored("created", r.created),
        lead_role=stored("role", r.role),
        lead_seniority=stored("seniority", r.seniority),
        lead_business=stored("business", r.business),
        lead_stage=stored("stage", r.stage),
        acc_industry=r.industry,
        acc_employees=r.employees,
        acc_revenue=r.revenue,
        acc_region=r.region,
        ev_ts=_join(_cat(ctxs, "ev_ts"), r.ev_ts),
        ev_type=_join(_cat(ctxs, "ev_type"), r.ev_type),
        ev_lead=_join(ev_lead, r.ev_lead),
        ev_account=_join(ev_owner, r.ev_account),
        ev_topic=_join(ev_topic, r.ev_topic),
        ev_pos=np.full(len(ev_owner) + len(r.ev_ts), -1, dtype=np.int64),
    )


def _b2b_from_payloads(payloads: list[dict], ctxs: list[B2BContext]) -> _B2BRequests:
    """The request part, request by request (``POST /score``, ``/score_batch``)."""
    n = len(payloads)
    req: dict[str, list[Any]] = {k: [] for k in ("created", "role", "seniority", "business", "stage")}
    acc: dict[str, list[Any]] = {k: [] for k in ("industry", "employees", "revenue", "region")}
    ev: dict[str, list[Any]] = {k: [] for k in ("ts", "type", "lead", "account", "topic")}
    old = np.full(n, -1, dtype=np.int64)
    topics: dict[str, int] = {}
    _add_each(payloads, ctxs, lambda i, p, c: _b2b_request(i, p, c, req, acc, ev, old, topics))
    return _B2BRequests(
        np.array(req["created"], np.int64), np.array(req["role"], np.int64),
        np.array(req["seniority"], np.float64), np.array(req["business"], np.float64),
        np.array(req["stage"], np.int64), old, _objects(acc["industry"]),
        np.array(acc["employees"], np.float64), np.array(acc["revenue"], np.float64), _objects(acc["region"]),
        np.array(ev["ts"], np.int64), np.array(ev["type"], np.int8), np.array(ev["lead"], np.int64),
        np.array(ev["account"], np.int64), np.array(ev["topic"], np.int64), topics,
    )  # fmt: skip


def _b2b_from_columns(t: RequestTable, ctxs: list[B2BContext]) -> _B2BRequests:
    """The request part from columns, a column at a time: the same values ``_b2b_from_payloads`` gives for the
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
    rows = np.asarray(ev.get("row", []), dtype=np.int64)
    order = np.argsort(rows, kind="stable")  # request by request, each in its own order (as the payloads)
    seen: set[tuple[int, str]] = set()
    keep = [
        k
        for k, i, e in zip(order.tolist(), rows[order].tolist(), [ev["event_id"][k] for k in order], strict=True)
        if e not in ctxs[i].event_ids and (i, e) not in seen and not seen.add((i, e))  # type: ignore[func-returns-value]
    ] if len(rows) else []  # fmt: skip
    at = rows[keep]
    types = [ev["type"][k] for k in keep]
    owner_ids = [ev["lead_id"][k] for k in keep] if ev.get("lead_id") else [None] * len(keep)
    topics: dict[str, int] = {}
    topic = [ev["topic"][k] for k in keep] if ev.get("topic") else [None] * len(keep)
    return _B2BRequests(
        created=np.asarray(lead["created_at"], dtype=np.int64),
        role=np.fromiter((ROLE_CODE.get(x or "unknown", unknown) for x in col(lead, "buying_role")), np.int64, n),
        seniority=np.fromiter((SENIORITY_RANK.get(x or "", np.nan) for x in col(lead, "seniority")), np.float64, n),
        business=np.fromiter((x in (None, "business") for x in col(lead, "email_domain_type")), np.float64, n),
        stage=np.array(stage, np.int64),
        old=old,
        industry=_objects(account["industry"]),
        employees=np.array([_num(v) for v in account["employee_count"]], np.float64),
        revenue=np.array([_num(v) for v in account["annual_revenue"]], np.float64),
        region=_objects(account["region"]),
        ev_ts=np.asarray(ev.get("ts", []), dtype=np.int64)[keep],
        ev_type=np.fromiter((B2B_CODE[x] for x in types), np.int8, len(keep)),
        ev_lead=np.fromiter(
            (i if (w is None or w == ids[i]) and x != "third_party_intent" else -1
             for i, w, x in zip(at.tolist(), owner_ids, types, strict=True)), np.int64, len(keep),
        ),
        ev_account=at,
        ev_topic=np.fromiter(
            (topics.setdefault(x, len(topics)) if x is not None else -1 for x in topic), np.int64, len(keep)
        ),
        topics=topics,
    )  # fmt: skip


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
    acc["employees"].append(_num(a.get("employee_count")))
    acc["revenue"].append(_num(a.get("annual_revenue")))
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
    for e in _new_events(payload.get("events"), c.event_ids):
        ev["ts"].append(epoch_seconds(e["ts"]))
        ev["type"].append(B2B_CODE[e["type"]])
        ev["lead"].append(
            i if e.get("lead_id", me) in (me, None) and e.get("type") != "third_party_intent" else -1
        )
        ev["account"].append(i)
        t = e.get("topic")
        ev["topic"].append(topics.setdefault(t, len(topics)) if t is not None else -1)


def _b2c_request(
    i: int,
    payload: dict,
    c: B2CContext,
    cust: dict,
    ev: dict,
    orders: dict,
    n_sessions: np.ndarray,
    categories: dict[str, int],
) -> None:
    """Request i's customer fields over the stored ones, its events the context lacks and its orders. Its
    events' sessions get codes local to the customer (the stored ones first, then new ones); ``n_sessions[i]``
    says how many it has."""
    m = dict(c.customer)
    m.update({k: v for k, v in payload["customer"].items() if v is not None})
    cust["created"].append(epoch_seconds(m.get("created_at", m.get("created"))))
    cust["channel"].append(m.get("channel"))
    cust["device"].append(m.get("device"))
    cust["consent_email"].append(float(bool(m.get("consent_email"))))
    cust["consent_sms"].append(float(bool(m.get("consent_sms"))))
    new: dict[str, int] = {}
    for e in _new_events(payload.get("events"), c.event_ids):
        ev["ts"].append(epoch_seconds(e["ts"]))
        ev["type"].append(B2C_CODE[e["type"]])
        ev["cust"].append(i)
        s = str(e.get("session_id"))
        k = c.sessions.get(s)
        ev["session"].append(k if k is not None else len(c.sessions) + new.setdefault(s, len(new)))
        x = e.get("category")
        ev["category"].append(categories.setdefault(x, len(categories)) if x is not None else -1)
        ev["price"].append(e.get("price"))
        ev["qty"].append(e.get("quantity"))
    n_sessions[i] = len(c.sessions) + len(new)
    for o in payload.get("orders") or []:
        orders["cust"].append(i)
        orders["ts"].append(epoch_seconds(o["ts"]))
        orders["amount"].append(float(o["amount"]))


def _new_events(events: list[dict] | None, stored_ids: frozenset[str]) -> list[dict]:
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


def _add_each(payloads: list[dict], ctxs: list[Any], add: Callable[[int, dict, Any], None]) -> None:
    """Add each request (with its stored context) to the batch frame's lists; a bad one raises ItemError."""
    for i, (payload, ctx) in enumerate(zip(payloads, ctxs, strict=True)):
        try:
            add(i, payload, ctx)
        except (KeyError, TypeError, ValueError, UserError) as exc:
            raise ItemError(i, _message(exc)) from None


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _message(exc: Exception) -> str:
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"{exc.args[0]}: unknown or missing value"
    return str(exc)
