"""Online features: one lead at request time, from the request payload plus an online store.

The batch job materializes, per account (B2B, hybrid) or customer (B2C), the context a request cannot carry:
firmographics, the account's contacts and roles, the last 90 days of events, past orders.  At request time
the payload (lead fields, recent events) is merged over that context (payload wins; events deduplicated by
id) and the *same* ``features.compute`` functions run on a one-account frame — so online and batch values are
identical for the same entity and as-of.  No pandas on this path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
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


class OnlineFeatures:
    """Computes entities' features for a motion from request payloads and the online store.

    A batch of requests becomes one frame with one pseudo-account (or customer) per request — the stored context
    with the request merged over it — so the shared ``compute`` runs once for the whole batch.
    """

    def __init__(self, conf: MotionConfig, store: OnlineStore | None, fs: FeatureSet | None = None):
        self.conf, self.store = conf, store
        self.fs = fs or feature_set(conf.feature_set)

    def contexts(self, keys: list[str]) -> list[dict]:
        if self.store is None:
            return [{} for _ in keys]
        raw = self.store.get_many([_key(self.conf.motion, k) for k in keys])
        return [orjson.loads(r) if r else {} for r in raw]

    def context(self, key: str) -> dict:
        return self.contexts([key])[0]

    def compute(self, payload: dict, as_of: int) -> dict[str, Any]:
        try:
            return self.compute_many([payload], as_of)[0]
        except ItemError as exc:
            raise UserError(str(exc)) from None

    def compute_many(self, payloads: list[dict], as_of: int) -> list[dict[str, Any]]:
        """One dict of feature values per payload, all as of ``as_of``; a bad payload raises ItemError."""
        if not payloads:
            return []
        if self.conf.motion == "b2c":
            fr, first = self._b2c_frame(payloads)
            n = fr.n
        else:
            fr, first = self._b2b_frame(payloads)
            n = fr.n_leads
        fr, keep = restrict(fr, as_of)
        position = np.full(n, -1, dtype=np.int64)
        position[keep] = np.arange(len(keep))
        row = position[first]
        if (row < 0).any():
            i = int(np.flatnonzero(row < 0)[0])
            raise ItemError(i, f"the entity was created after as_of ({as_of}); nothing to score yet")
        values = compute(fr, as_of, self.conf, self.fs)
        columns = {k: v[row].tolist() for k, v in values.items()}
        return [dict(zip(columns, r, strict=True)) for r in zip(*columns.values(), strict=True)]

    def _b2b_frame(self, payloads: list[dict]) -> tuple[B2BFrame, np.ndarray]:
        leads = {k: [] for k in ("account", "created", "role", "seniority", "business", "stage")}
        acc = {k: [] for k in ("industry", "employees", "revenue", "region")}
        ev = {k: [] for k in ("ts", "type", "lead", "account", "topic")}
        first = np.empty(len(payloads), dtype=np.int64)
        topics: dict[str, int] = {}
        ctxs = self.contexts([str(p["lead"]["account_id"]) for p in payloads])
        _add_each(payloads, ctxs, lambda i, p, c: self._b2b_item(i, p, c, leads, acc, ev, first, topics))
        n_ev = len(ev["ts"])
        return B2BFrame(
            lead_account=np.array(leads["account"], np.int64), lead_created=np.array(leads["created"], np.int64),
            lead_role=np.array(leads["role"], np.int64), lead_seniority=np.array(leads["seniority"], np.float64),
            lead_business=np.array(leads["business"], np.float64), lead_stage=np.array(leads["stage"], np.int64),
            acc_industry=_objects(acc["industry"]), acc_employees=np.array(acc["employees"], np.float64),
            acc_revenue=np.array(acc["revenue"], np.float64), acc_region=_objects(acc["region"]),
            ev_ts=np.array(ev["ts"], np.int64), ev_type=np.array(ev["type"], np.int8),
            ev_lead=np.array(ev["lead"], np.int64), ev_account=np.array(ev["account"], np.int64),
            ev_topic=np.array(ev["topic"], np.int64), ev_pos=np.full(n_ev, -1, dtype=np.int64),
        ), first

    @staticmethod
    def _b2b_item(i: int, payload: dict, ctx: dict, leads: dict, acc: dict, ev: dict, first: np.ndarray,
                  topics: dict[str, int]) -> None:
        lead = payload["lead"]
        a = dict(ctx.get("account", {}))
        a.update({k: v for k, v in (payload.get("account") or {}).items() if v is not None})
        acc["industry"].append(a.get("industry"))
        acc["employees"].append(_num(a.get("employee_count")))
        acc["revenue"].append(_num(a.get("annual_revenue")))
        acc["region"].append(a.get("region"))
        cl = ctx.get("leads") or _EMPTY_LEADS
        ids = cl["lead_id"]
        # The request lead comes first, replacing its stored copy; the account's other contacts follow.
        old = ids.index(lead["lead_id"]) if lead["lead_id"] in ids else -1
        order = [j for j in range(len(ids)) if j != old]
        base = len(leads["account"])
        first[i] = base
        new_index = {o: base + j + 1 for j, o in enumerate(order)}
        if old >= 0:
            new_index[old] = base
        stage = STAGE_RANK[lead["stage"]] if lead.get("stage") else (cl["stage"][old] if old >= 0 else 0)
        leads["account"] += [i] * (len(order) + 1)
        leads["created"] += [parse_time(lead["created_at"])] + [cl["created"][j] for j in order]
        leads["role"] += [ROLE_CODE.get(lead.get("buying_role") or "unknown", ROLE_CODE["unknown"])] + [
            cl["role"][j] for j in order]
        leads["seniority"] += [SENIORITY_RANK.get(lead.get("seniority") or "", np.nan)] + [
            cl["seniority"][j] for j in order]
        leads["business"] += [float(lead.get("email_domain_type") == "business")] + [
            cl["business"][j] for j in order]
        leads["stage"] += [stage] + [cl["stage"][j] for j in order]
        ce = ctx.get("events") or _EMPTY_B2B_EVENTS
        pe = _new_events(payload.get("events"), ce["event_id"])
        me = lead["lead_id"]
        ev["ts"] += ce["ts"] + [parse_time(e["ts"]) for e in pe]
        ev["type"] += [B2B_CODE[t] for t in ce["type"]] + [B2B_CODE[e["type"]] for e in pe]
        ev["lead"] += [new_index[x] if x >= 0 else -1 for x in ce["lead"]]
        ev["lead"] += [base if e.get("lead_id", me) in (me, None) and e.get("type") != "third_party_intent" else -1
                       for e in pe]
        ev["account"] += [i] * (len(ce["ts"]) + len(pe))
        ev["topic"] += [topics.setdefault(x, len(topics)) if x is not None else -1
                        for x in ce["topic"] + [e.get("topic") for e in pe]]

    def _b2c_frame(self, payloads: list[dict]) -> tuple[B2CFrame, np.ndarray]:
        cust = {k: [] for k in ("created", "channel", "device", "consent_email", "consent_sms")}
        ev = {k: [] for k in ("ts", "type", "cust", "session", "category", "price", "qty")}
        orders = {k: [] for k in ("cust", "ts", "amount")}
        sessions: dict[tuple[int, str], int] = {}
        categories: dict[str, int] = {}
        ctxs = self.contexts([str(p["customer"]["customer_id"]) for p in payloads])
        _add_each(payloads, ctxs, lambda i, p, c: self._b2c_item(i, p, c, cust, ev, orders, sessions, categories))
        n_ev = len(ev["ts"])
        return B2CFrame(
            cust_created=np.array(cust["created"], dtype=np.int64), cust_channel=_objects(cust["channel"]),
            cust_device=_objects(cust["device"]), cust_consent_email=np.array(cust["consent_email"], np.float64),
            cust_consent_sms=np.array(cust["consent_sms"], np.float64),
            ev_ts=np.array(ev["ts"], np.int64), ev_type=np.array(ev["type"], np.int8),
            ev_cust=np.array(ev["cust"], np.int64), ev_pos=np.full(n_ev, -1, dtype=np.int64),
            ev_session=np.array(ev["session"], np.int64), ev_category=np.array(ev["category"], np.int64),
            ev_price=np.array(ev["price"], np.float64), ev_qty=np.array(ev["qty"], np.float64),
            ord_cust=np.array(orders["cust"], np.int64), ord_ts=np.array(orders["ts"], np.int64),
            ord_amount=np.array(orders["amount"], np.float64),
        ), np.arange(len(payloads), dtype=np.int64)

    @staticmethod
    def _b2c_item(i: int, payload: dict, ctx: dict, cust: dict, ev: dict, orders: dict,
                  sessions: dict[tuple[int, str], int], categories: dict[str, int]) -> None:
        c = dict(ctx.get("customer", {}))
        c.update({k: v for k, v in payload["customer"].items() if v is not None})
        cust["created"].append(parse_time(c.get("created_at", c.get("created"))))
        cust["channel"].append(c.get("channel"))
        cust["device"].append(c.get("device"))
        cust["consent_email"].append(float(bool(c.get("consent_email"))))
        cust["consent_sms"].append(float(bool(c.get("consent_sms"))))
        ce = ctx.get("events") or _EMPTY_B2C_EVENTS
        pe = _new_events(payload.get("events"), ce["event_id"])
        ev["ts"] += ce["ts"] + [parse_time(e["ts"]) for e in pe]
        ev["type"] += [B2C_CODE[t] for t in ce["type"]] + [B2C_CODE[e["type"]] for e in pe]
        ev["cust"] += [i] * (len(ce["ts"]) + len(pe))
        ev["session"] += [sessions.setdefault((i, x), len(sessions))
                          for x in ce["session"] + [str(e.get("session_id")) for e in pe]]
        ev["category"] += [categories.setdefault(x, len(categories)) if x is not None else -1
                           for x in ce["category"] + [e.get("category") for e in pe]]
        ev["price"] += ce["price"] + [e.get("price") for e in pe]
        ev["qty"] += ce["quantity"] + [e.get("quantity") for e in pe]
        co = ctx.get("orders") or {"ts": [], "amount": []}
        po = payload.get("orders") or []
        orders["cust"] += [i] * (len(co["ts"]) + len(po))
        orders["ts"] += co["ts"] + [parse_time(o["ts"]) for o in po]
        orders["amount"] += co["amount"] + [float(o["amount"]) for o in po]


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
