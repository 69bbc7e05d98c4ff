"""Online features: one lead at request time, from the request payload plus an online store.

The batch job materializes, per account (B2B, hybrid) or customer (B2C), the context a request cannot carry:
firmographics, the account's contacts and roles, the last 90 days of events, past orders.  At request time
the payload (lead fields, recent events) is merged over that context (payload wins; events deduplicated by
id) and the *same* ``features.compute`` functions run on a one-account frame — so online and batch values are
identical for the same entity and as-of.  No pandas on this path.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import orjson

from features.batch import SENIORITY_RANK, Prepared, frame_as_of, restrict
from features.compute import B2B_CODE, B2C_CODE, ROLE_CODE, STAGE_RANK, B2BFrame, B2CFrame, compute
from features.definitions import FeatureSet, feature_set
from leadscore.config import MotionConfig
from leadscore.errors import UserError
from leadscore.store import Store

# ---------------------------------------------------------------- stores

class OnlineStore(Protocol):
    def put_many(self, items: Iterable[tuple[str, str]]) -> int: ...
    def get_many(self, keys: list[str]) -> list[str | None]: ...
    def close(self) -> None: ...


class SQLStore:
    """SQLite (the embedded default, a file under LEADSCORE_HOME) or PostgreSQL, through the project's Store."""

    DDL = ["CREATE TABLE IF NOT EXISTS leadscore_online (key TEXT PRIMARY KEY, value TEXT NOT NULL)"]
    UPSERT = ("INSERT INTO leadscore_online (key, value) VALUES (?, ?) "
              "ON CONFLICT (key) DO UPDATE SET value = excluded.value")

    def __init__(self, url: str):
        self._db = Store(url, ddl=self.DDL)

    def put_many(self, items: Iterable[tuple[str, str]]) -> int:
        rows = list(items)
        self._db.executemany(self.UPSERT, rows)
        return len(rows)

    def get_many(self, keys: list[str]) -> list[str | None]:
        found: dict[str, str] = {}
        distinct = list(dict.fromkeys(keys))
        for s in range(0, len(distinct), 500):
            part = distinct[s:s + 500]
            rows = self._db.query(f"SELECT key, value FROM leadscore_online WHERE key IN ({','.join('?' * len(part))})",
                                  tuple(part))
            found.update((r["key"], r["value"]) for r in rows)
        return [found.get(k) for k in keys]

    def close(self) -> None:
        self._db.close()


class RedisStore:
    def __init__(self, url: str):
        import redis
        self._r = redis.Redis.from_url(url)

    def put_many(self, items: Iterable[tuple[str, str]]) -> int:
        n = 0
        pipe = self._r.pipeline(transaction=False)
        for k, v in items:
            pipe.set(k, v)
            n += 1
            if n % 5000 == 0:
                pipe.execute()
        pipe.execute()
        return n

    def get_many(self, keys: list[str]) -> list[str | None]:
        return [v.decode() if v is not None else None for v in self._r.mget(keys)] if keys else []

    def close(self) -> None:
        self._r.close()


def open_store(url: str) -> OnlineStore:
    """``sqlite:///path``, ``redis://host:port/db`` or ``postgresql://…``."""
    if url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        return SQLStore(url)
    if url.startswith(("redis://", "rediss://")):
        return RedisStore(url)
    raise UserError(f"unsupported online store URL {url!r} (sqlite:///, redis://, postgresql://)")


def _key(motion: str, entity: str) -> str:
    return f"leadscore:{motion}:{entity}"


# ---------------------------------------------------------------- materialization

def _grouped(keys: np.ndarray) -> dict[int, np.ndarray]:
    """Row indices per key value: one stable sort, then a slice per group."""
    if len(keys) == 0:
        return {}
    order = np.argsort(keys, kind="stable")
    cuts = np.flatnonzero(np.diff(keys[order])) + 1
    return {int(keys[order[s]]): order[s:e] for s, e in zip(np.r_[0, cuts], np.r_[cuts, len(keys)], strict=True)}


NONE = np.zeros(0, dtype=np.int64)


def _nan_none(a: np.ndarray) -> list:
    return [None if v != v else float(v) for v in a.tolist()]


def _names(codes: np.ndarray, vocab: np.ndarray) -> list:
    return [vocab[c] if c >= 0 else None for c in codes.tolist()]


def materialize(p: Prepared, as_of: int, conf: MotionConfig, store: OnlineStore) -> int:
    """Write every account's (or customer's) context as it stood at ``as_of``; returns entities written."""
    fr, keep = frame_as_of(p, as_of)
    motion = conf.motion
    if isinstance(fr, B2CFrame):
        return store.put_many(_b2c_contexts(motion, fr, p.entity_ids[keep], p.vocab, p.event_ids))
    return store.put_many(_b2b_contexts(motion, fr, p.entity_ids[keep], p.account_ids, p.vocab, p.event_ids))


def _b2b_contexts(motion: str, fr: B2BFrame, lead_ids: np.ndarray, account_ids: np.ndarray,
                  vocab: dict[str, np.ndarray], event_ids) -> Iterator[tuple[str, str]]:
    leads_of, events_of = _grouped(fr.lead_account), _grouped(fr.ev_account)
    types = np.asarray(list(B2B_CODE), dtype=object)
    for a in sorted(set(events_of) | set(leads_of)):
        li, ei = leads_of.get(a, NONE), events_of.get(a, NONE)
        local = {int(g): i for i, g in enumerate(li)}
        ctx = {
            "account": {"account_id": account_ids[a], "industry": fr.acc_industry[a],
                        "employee_count": _nan_none(fr.acc_employees[a:a + 1])[0],
                        "annual_revenue": _nan_none(fr.acc_revenue[a:a + 1])[0], "region": fr.acc_region[a]},
            "leads": {"lead_id": lead_ids[li].tolist(), "created": fr.lead_created[li].tolist(),
                      "role": fr.lead_role[li].tolist(), "seniority": _nan_none(fr.lead_seniority[li]),
                      "business": fr.lead_business[li].tolist(), "stage": fr.lead_stage[li].tolist()},
            "events": {"ts": fr.ev_ts[ei].tolist(), "type": types[fr.ev_type[ei]].tolist(),
                       "lead": [local.get(int(x), -1) if x >= 0 else -1 for x in fr.ev_lead[ei]],
                       "topic": _names(fr.ev_topic[ei], vocab["topic"]),
                       "event_id": event_ids.iloc[fr.ev_pos[ei]].tolist()},
        }
        yield _key(motion, str(account_ids[a])), json.dumps(ctx, separators=(",", ":"), allow_nan=False)


def _b2c_contexts(motion: str, fr: B2CFrame, customer_ids: np.ndarray,
                  vocab: dict[str, np.ndarray], event_ids) -> Iterator[tuple[str, str]]:
    events_of, orders_of = _grouped(fr.ev_cust), _grouped(fr.ord_cust)
    types = np.asarray(list(B2C_CODE), dtype=object)
    for c in range(fr.n):
        ei, oi = events_of.get(c, NONE), orders_of.get(c, NONE)
        ctx = {
            "customer": {"customer_id": customer_ids[c], "created": int(fr.cust_created[c]),
                         "channel": fr.cust_channel[c], "device": fr.cust_device[c],
                         "consent_email": bool(fr.cust_consent_email[c]), "consent_sms": bool(fr.cust_consent_sms[c])},
            "events": {"ts": fr.ev_ts[ei].tolist(), "type": types[fr.ev_type[ei]].tolist(),
                       "session": vocab["session"][fr.ev_session[ei]].tolist(),
                       "category": _names(fr.ev_category[ei], vocab["category"]),
                       "price": _nan_none(fr.ev_price[ei]), "quantity": _nan_none(fr.ev_qty[ei]),
                       "event_id": event_ids.iloc[fr.ev_pos[ei]].tolist()},
            "orders": {"ts": fr.ord_ts[oi].tolist(), "amount": fr.ord_amount[oi].tolist()},
        }
        yield _key(motion, str(customer_ids[c])), json.dumps(ctx, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------- request time

MIN_EPOCH, MAX_EPOCH = -62_135_596_800, 253_402_300_799  # 0001-01-01 and 9999-12-31T23:59:59 UTC


def parse_time(v: Any) -> int:
    """ISO-8601 string (UTC if no zone) or epoch seconds → epoch seconds."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        if v != v or v in (float("inf"), float("-inf")):
            raise UserError("timestamp must be finite")
        if not MIN_EPOCH <= v <= MAX_EPOCH:
            raise UserError(f"timestamp {v!r} is out of range (epoch seconds of the years 1 to 9999)")
        return int(v)
    if isinstance(v, datetime):
        d = v
    elif isinstance(v, str):
        try:
            d = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"unparseable timestamp {v!r} (use ISO-8601)") from None
    else:
        raise UserError(f"unparseable timestamp {v!r}")
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return int(d.timestamp())


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


class ItemError(UserError):
    """A bad item of a batch: ``index`` says which."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


@dataclass(frozen=True, slots=True)
class B2BContext:
    """An account's stored context decoded into arrays once (memoised by its stored text): its contacts in
    local rows, its events with local lead rows (-1: account-level) and local topic codes into ``topics``."""

    account: dict[str, Any]
    lead_row: dict[str, int]
    created: np.ndarray
    role: np.ndarray
    seniority: np.ndarray
    business: np.ndarray
    stage: np.ndarray
    ev_ts: np.ndarray
    ev_type: np.ndarray
    ev_lead: np.ndarray
    ev_topic: np.ndarray
    topics: tuple[str, ...]
    event_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class B2CContext:
    """A customer's stored context decoded into arrays once: events with local session codes (``sessions``
    maps a session id to its code) and local category codes into ``categories``, and past orders."""

    customer: dict[str, Any]
    ev_ts: np.ndarray
    ev_type: np.ndarray
    ev_session: np.ndarray
    sessions: dict[str, int]
    ev_category: np.ndarray
    categories: tuple[str, ...]
    ev_price: np.ndarray
    ev_qty: np.ndarray
    event_ids: frozenset[str]
    ord_ts: np.ndarray
    ord_amount: np.ndarray


def _codes(values: list) -> tuple[np.ndarray, tuple]:
    """Local codes (-1 for None) and the distinct values they index, in order of first appearance."""
    vocab: dict = {}
    codes = [vocab.setdefault(v, len(vocab)) if v is not None else -1 for v in values]
    return np.array(codes, dtype=np.int64), tuple(vocab)


def _frozen(context: Any) -> Any:
    """Make a decoded context's arrays read-only: the memo shares them with every batch that reads it."""
    for name in context.__slots__:
        if isinstance(v := getattr(context, name), np.ndarray):
            v.flags.writeable = False
    return context


def decode_b2b(ctx: dict) -> B2BContext:
    leads, ev = ctx.get("leads") or _EMPTY_LEADS, ctx.get("events") or _EMPTY_B2B_EVENTS
    topic, topics = _codes(ev["topic"])
    return _frozen(B2BContext(
        account=ctx.get("account", {}), lead_row={k: j for j, k in enumerate(leads["lead_id"])},
        created=np.array(leads["created"], np.int64), role=np.array(leads["role"], np.int64),
        seniority=np.array(leads["seniority"], np.float64), business=np.array(leads["business"], np.float64),
        stage=np.array(leads["stage"], np.int64), ev_ts=np.array(ev["ts"], np.int64),
        ev_type=np.array([B2B_CODE[t] for t in ev["type"]], np.int8), ev_lead=np.array(ev["lead"], np.int64),
        ev_topic=topic, topics=topics, event_ids=frozenset(ev["event_id"])))


def decode_b2c(ctx: dict) -> B2CContext:
    ev, orders = ctx.get("events") or _EMPTY_B2C_EVENTS, ctx.get("orders") or {"ts": [], "amount": []}
    session, sessions = _codes([str(x) for x in ev["session"]])  # as a request's session ids are read
    category, categories = _codes(ev["category"])
    return _frozen(B2CContext(
        customer=ctx.get("customer", {}), ev_ts=np.array(ev["ts"], np.int64),
        ev_type=np.array([B2C_CODE[t] for t in ev["type"]], np.int8), ev_session=session,
        sessions={k: j for j, k in enumerate(sessions)}, ev_category=category, categories=categories,
        ev_price=np.array(ev["price"], np.float64), ev_qty=np.array(ev["quantity"], np.float64),
        event_ids=frozenset(ev["event_id"]), ord_ts=np.array(orders["ts"], np.int64),
        ord_amount=np.array(orders["amount"], np.float64)))


MEMO_COST = 5


class OnlineFeatures:
    """Computes entities' features for a motion from request payloads and the online store.

    A batch of requests becomes one frame with one pseudo-account (or customer) per request — the stored context
    with the request merged over it — so the shared ``compute`` runs once for the whole batch. Stored contexts
    are decoded into arrays once and memoised by their stored text (least recently used out first, within
    ``memo_mb`` megabytes), so a materialization that rewrites a context is seen on its next read. Only the
    request's own fields and events are handled item by item; the stored part of the frame is assembled with
    whole-batch array operations.
    """

    def __init__(self, conf: MotionConfig, store: OnlineStore | None, fs: FeatureSet | None = None,
                 memo_mb: float = 64):
        self.conf, self.store = conf, store
        self.fs = fs or feature_set(conf.feature_set)
        self.memo_bytes = int(memo_mb * 2**20)
        self._memo: OrderedDict[str, B2BContext | B2CContext] = OrderedDict()
        self._memo_used = 0
        self._decode = decode_b2c if conf.motion == "b2c" else decode_b2b
        self._empty = self._decode({})

    def contexts(self, keys: list[str]) -> list[Any]:
        """The decoded stored context of each key (an empty one where nothing is stored)."""
        empty = self._empty
        if self.store is None:
            return [empty] * len(keys)
        memo, out = self._memo, []
        for raw in self.store.get_many([_key(self.conf.motion, k) for k in keys]):
            if not raw:
                out.append(empty)
                continue
            d = memo.get(raw)
            if d is None:
                d = self._decode(orjson.loads(raw))
                self._remember(raw, d)
            else:
                memo.move_to_end(raw)
            out.append(d)
        return out

    def _remember(self, raw: str, context: Any) -> None:
        """Keep a decoded context, then drop the least recently used ones until the memo fits its budget. An
        entry counts as ``MEMO_COST`` times its stored text: the text itself (the key) and the decoded arrays,
        sets and dicts, which measured about four times the text on the generated B2B contexts."""
        cost = MEMO_COST * len(raw)
        if cost > self.memo_bytes:
            return
        self._memo[raw] = context
        self._memo_used += cost
        while self._memo_used > self.memo_bytes:
            old, _ = self._memo.popitem(last=False)
            self._memo_used -= MEMO_COST * len(old)

    def compute(self, payload: dict, as_of: int) -> dict[str, Any]:
        try:
            return self.compute_many([payload], as_of)[0]
        except ItemError as exc:
            raise UserError(str(exc)) from None

    def compute_many(self, payloads: list[dict], as_of: int) -> list[dict[str, Any]]:
        """One dict of feature values per payload, all as of ``as_of``; a bad payload raises ItemError."""
        return rows_of(self.compute_columns(payloads, as_of)) if payloads else []

    def compute_columns(self, payloads: list[dict], as_of: int) -> dict[str, np.ndarray]:
        """The feature values of the payloads as columns (row i: payload i); a bad payload raises ItemError."""
        if not payloads:
            raise ValueError("compute_columns needs at least one payload")
        if self.conf.motion == "b2c":
            fr = self._b2c_frame(payloads)
            n = fr.n
        else:
            fr = self._b2b_frame(payloads)
            n = fr.n_leads
        # Request i is row i of the frame (its lead, or its customer).
        fr, keep = restrict(fr, as_of)
        position = np.full(n, -1, dtype=np.int64)
        position[keep] = np.arange(len(keep))
        row = position[:len(payloads)]
        if (row < 0).any():
            i = int(np.flatnonzero(row < 0)[0])
            raise ItemError(i, f"the entity was created after as_of ({as_of}); nothing to score yet")
        return {k: v[row] for k, v in compute(fr, as_of, self.conf, self.fs).items()}

    def _b2b_frame(self, payloads: list[dict]) -> B2BFrame:
        """Rows 0..n-1: the request leads; then each account's other stored contacts. Events: the stored ones,
        then the request's new ones."""
        n = len(payloads)
        req = {k: [] for k in ("created", "role", "seniority", "business", "stage")}
        acc = {k: [] for k in ("industry", "employees", "revenue", "region")}
        ev = {k: [] for k in ("ts", "type", "lead", "account", "topic")}
        old = np.full(n, -1, dtype=np.int64)
        topics: dict[str, int] = {}
        ctxs: list[B2BContext] = self.contexts([str(p["lead"]["account_id"]) for p in payloads])
        _add_each(payloads, ctxs, lambda i, p, c: _b2b_request(i, p, c, req, acc, ev, old, topics))
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

        def stored(name: str, dtype) -> np.ndarray:
            return _join(np.array(req[name], dtype), _cat(ctxs, name)[kept])

        return B2BFrame(
            lead_account=_join(np.arange(n), owner[kept]), lead_created=stored("created", np.int64),
            lead_role=stored("role", np.int64), lead_seniority=stored("seniority", np.float64),
            lead_business=stored("business", np.float64), lead_stage=stored("stage", np.int64),
            acc_industry=_objects(acc["industry"]), acc_employees=np.array(acc["employees"], np.float64),
            acc_revenue=np.array(acc["revenue"], np.float64), acc_region=_objects(acc["region"]),
            ev_ts=_join(_cat(ctxs, "ev_ts"), np.array(ev["ts"], np.int64)),
            ev_type=_join(_cat(ctxs, "ev_type"), np.array(ev["type"], np.int8)),
            ev_lead=_join(ev_lead, np.array(ev["lead"], np.int64)),
            ev_account=_join(ev_owner, np.array(ev["account"], np.int64)),
            ev_topic=_join(ev_topic, np.array(ev["topic"], np.int64)),
            ev_pos=np.full(len(ev_owner) + len(ev["ts"]), -1, dtype=np.int64))

    def _b2c_frame(self, payloads: list[dict]) -> B2CFrame:
        """Customer i is request i; events and orders: the stored ones, then the request's new ones."""
        n = len(payloads)
        cust = {k: [] for k in ("created", "channel", "device", "consent_email", "consent_sms")}
        ev = {k: [] for k in ("ts", "type", "cust", "session", "category", "price", "qty")}
        orders = {k: [] for k in ("cust", "ts", "amount")}
        n_sessions = np.zeros(n, dtype=np.int64)
        categories: dict[str, int] = {}
        ctxs: list[B2CContext] = self.contexts([str(p["customer"]["customer_id"]) for p in payloads])
        _add_each(payloads, ctxs,
                  lambda i, p, c: _b2c_request(i, p, c, cust, ev, orders, n_sessions, categories))
        session_base, _ = _spans(n_sessions.tolist())  # each customer's sessions get their own range of codes
        _, ev_owner = _spans([len(c.ev_ts) for c in ctxs])
        c_start, _ = _spans([len(c.categories) for c in ctxs])
        codes = np.array([categories.setdefault(x, len(categories)) for c in ctxs for x in c.categories] + [-1],
                         np.int64)
        local = _cat(ctxs, "ev_category")
        ev_category = codes[np.where(local >= 0, c_start[ev_owner] + local, len(codes) - 1)]
        _, ord_owner = _spans([len(c.ord_ts) for c in ctxs])

        def both(name: str, dtype, request: str) -> np.ndarray:
            return _join(_cat(ctxs, name), np.array(ev[request], dtype))

        return B2CFrame(
            cust_created=np.array(cust["created"], dtype=np.int64), cust_channel=_objects(cust["channel"]),
            cust_device=_objects(cust["device"]), cust_consent_email=np.array(cust["consent_email"], np.float64),
            cust_consent_sms=np.array(cust["consent_sms"], np.float64),
            ev_ts=both("ev_ts", np.int64, "ts"), ev_type=both("ev_type", np.int8, "type"),
            ev_cust=_join(ev_owner, np.array(ev["cust"], np.int64)),
            ev_pos=np.full(len(ev_owner) + len(ev["ts"]), -1, dtype=np.int64),
            ev_session=_join(session_base[ev_owner] + _cat(ctxs, "ev_session"),
                             session_base[np.array(ev["cust"], np.int64)] + np.array(ev["session"], np.int64)),
            ev_category=_join(ev_category, np.array(ev["category"], np.int64)),
            ev_price=both("ev_price", np.float64, "price"), ev_qty=both("ev_qty", np.float64, "qty"),
            ord_cust=_join(ord_owner, np.array(orders["cust"], np.int64)),
            ord_ts=_join(_cat(ctxs, "ord_ts"), np.array(orders["ts"], np.int64)),
            ord_amount=_join(_cat(ctxs, "ord_amount"), np.array(orders["amount"], np.float64)))


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


def _b2b_request(i: int, payload: dict, c: B2BContext, req: dict, acc: dict, ev: dict, old: np.ndarray,
                 topics: dict[str, int]) -> None:
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
    req["created"].append(parse_time(lead["created_at"]))
    req["role"].append(ROLE_CODE.get(lead.get("buying_role") or "unknown", ROLE_CODE["unknown"]))
    req["seniority"].append(SENIORITY_RANK.get(lead.get("seniority") or "", np.nan))
    req["business"].append(float(lead.get("email_domain_type") == "business"))
    req["stage"].append(STAGE_RANK[lead["stage"]] if lead.get("stage") else (int(c.stage[j]) if j >= 0 else 0))
    for e in _new_events(payload.get("events"), c.event_ids):
        ev["ts"].append(parse_time(e["ts"]))
        ev["type"].append(B2B_CODE[e["type"]])
        ev["lead"].append(i if e.get("lead_id", me) in (me, None) and e.get("type") != "third_party_intent" else -1)
        ev["account"].append(i)
        t = e.get("topic")
        ev["topic"].append(topics.setdefault(t, len(topics)) if t is not None else -1)


def _b2c_request(i: int, payload: dict, c: B2CContext, cust: dict, ev: dict, orders: dict,
                 n_sessions: np.ndarray, categories: dict[str, int]) -> None:
    """Request i's customer fields over the stored ones, its events the context lacks and its orders. Its
    events' sessions get codes local to the customer (the stored ones first, then new ones); ``n_sessions[i]``
    says how many it has."""
    m = dict(c.customer)
    m.update({k: v for k, v in payload["customer"].items() if v is not None})
    cust["created"].append(parse_time(m.get("created_at", m.get("created"))))
    cust["channel"].append(m.get("channel"))
    cust["device"].append(m.get("device"))
    cust["consent_email"].append(float(bool(m.get("consent_email"))))
    cust["consent_sms"].append(float(bool(m.get("consent_sms"))))
    new: dict[str, int] = {}
    for e in _new_events(payload.get("events"), c.event_ids):
        ev["ts"].append(parse_time(e["ts"]))
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
        orders["ts"].append(parse_time(o["ts"]))
        orders["amount"].append(float(o["amount"]))


def _new_events(events: list[dict] | None, stored_ids: list[str]) -> list[dict]:
    """The request's events that the stored context does not hold, each event id once (the first), as the
    batch path keeps them: a webhook that repeats an event does not count it twice."""
    if not events:
        return []
    seen = set(stored_ids)
    out = []
    for e in events:
        k = e.get("event_id")
        if k is None or k not in seen:
            seen.add(k)
            out.append(e)
    return out


def _add_each(payloads: list[dict], ctxs: list[dict], add: Callable[[int, dict, dict], None]) -> None:
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


_EMPTY_LEADS = {"lead_id": [], "created": [], "role": [], "seniority": [], "business": [], "stage": []}
_EMPTY_B2B_EVENTS = {"ts": [], "type": [], "lead": [], "topic": [], "event_id": []}
_EMPTY_B2C_EVENTS = {"ts": [], "type": [], "session": [], "category": [], "price": [], "quantity": [], "event_id": []}
