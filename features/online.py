"""Online features: one lead at request time, from the request payload plus an online store.

The batch job materializes, per account (B2B, hybrid) or customer (B2C), the context a request cannot carry:
firmographics, the account's contacts and roles, the last 90 days of events, past orders.  At request time
the payload (lead fields, recent events) is merged over that context (payload wins; events deduplicated by
id) and the *same* ``features.compute`` functions run on a one-account frame — so online and batch values are
identical for the same entity and as-of.  No pandas on this path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from features.batch import SENIORITY_RANK, Prepared, frame_as_of, restrict
from features.compute import B2B_CODE, B2C_CODE, ROLE_CODE, STAGE_RANK, B2BFrame, B2CFrame, compute
from features.definitions import FeatureSet, feature_set
from leadscore.config import MotionConfig
from leadscore.errors import UserError
from leadscore.store import Store

# ---------------------------------------------------------------- stores

class OnlineStore(Protocol):
    def put_many(self, items: Iterable[tuple[str, str]]) -> int: ...
    def get(self, key: str) -> str | None: ...
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

    def get(self, key: str) -> str | None:
        rows = self._db.query("SELECT value FROM leadscore_online WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

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

    def get(self, key: str) -> str | None:
        v = self._r.get(key)
        return v.decode() if v is not None else None

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


def _codes(names: list, table: dict[str, int]) -> np.ndarray:
    """Names → codes consistent within one request (distinct counts need nothing more)."""
    return np.fromiter((table.setdefault(x, len(table)) if x is not None else -1 for x in names),
                       dtype=np.int64, count=len(names))


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
        yield _key(motion, str(account_ids[a])), json.dumps(ctx, separators=(",", ":"))


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
        yield _key(motion, str(customer_ids[c])), json.dumps(ctx, separators=(",", ":"))


# ---------------------------------------------------------------- request time

def parse_time(v: Any) -> int:
    """ISO-8601 string (UTC if no zone) or epoch seconds → epoch seconds."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        if v != v or v in (float("inf"), float("-inf")):
            raise UserError("timestamp must be finite")
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


class OnlineFeatures:
    """Computes one entity's features for a motion from a payload and the online store."""

    def __init__(self, conf: MotionConfig, store: OnlineStore | None, fs: FeatureSet | None = None):
        self.conf, self.store = conf, store
        self.fs = fs or feature_set(conf.feature_set)

    def context(self, key: str) -> dict:
        raw = self.store.get(_key(self.conf.motion, key)) if self.store is not None else None
        return json.loads(raw) if raw else {}

    def compute(self, payload: dict, as_of: int) -> dict[str, Any]:
        if self.conf.motion == "b2c":
            fr = self._b2c_frame(payload)
        else:
            fr = self._b2b_frame(payload)
        fr, keep = restrict(fr, as_of)
        if len(keep) == 0 or keep[0] != 0:
            raise UserError(f"the entity was created after as_of ({as_of}); nothing to score yet")
        values = compute(fr, as_of, self.conf, self.fs)
        return {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in values.items()}

    def _b2b_frame(self, payload: dict) -> B2BFrame:
        lead = payload["lead"]
        ctx = self.context(str(lead["account_id"]))
        acc = dict(ctx.get("account", {}))
        acc.update({k: v for k, v in (payload.get("account") or {}).items() if v is not None})
        cl = ctx.get("leads") or _EMPTY_LEADS
        ids = cl["lead_id"]
        # The request lead is index 0, replacing its stored copy; the account's other contacts follow.
        old = ids.index(lead["lead_id"]) if lead["lead_id"] in ids else -1
        order = [i for i in range(len(ids)) if i != old]
        new_index = {o: j + 1 for j, o in enumerate(order)}
        if old >= 0:
            new_index[old] = 0
        stage = STAGE_RANK[lead["stage"]] if lead.get("stage") else (cl["stage"][old] if old >= 0 else 0)
        ce = ctx.get("events") or _EMPTY_B2B_EVENTS
        seen = set(ce["event_id"])
        pe = [e for e in payload.get("events") or () if e.get("event_id") not in seen]
        me = lead["lead_id"]
        n_ev = len(ce["ts"]) + len(pe)
        ev_lead = [new_index[x] if x >= 0 else -1 for x in ce["lead"]]
        ev_lead += [0 if e.get("lead_id", me) in (me, None) and e.get("type") != "third_party_intent" else -1
                    for e in pe]
        return B2BFrame(
            lead_account=np.zeros(len(order) + 1, dtype=np.int64),
            lead_created=np.array([parse_time(lead["created_at"])] + [cl["created"][i] for i in order], np.int64),
            lead_role=np.array([ROLE_CODE.get(lead.get("buying_role") or "unknown", ROLE_CODE["unknown"])]
                               + [cl["role"][i] for i in order], np.int64),
            lead_seniority=np.array([SENIORITY_RANK.get(lead.get("seniority") or "", np.nan)]
                                    + [cl["seniority"][i] for i in order], np.float64),
            lead_business=np.array([float(lead.get("email_domain_type") == "business")]
                                   + [cl["business"][i] for i in order], np.float64),
            lead_stage=np.array([stage] + [cl["stage"][i] for i in order], np.int64),
            acc_industry=np.array([acc.get("industry")], dtype=object),
            acc_employees=np.array([_num(acc.get("employee_count"))]),
            acc_revenue=np.array([_num(acc.get("annual_revenue"))]),
            acc_region=np.array([acc.get("region")], dtype=object),
            ev_ts=np.array(ce["ts"] + [parse_time(e["ts"]) for e in pe], np.int64),
            ev_type=np.array([B2B_CODE[t] for t in ce["type"]] + [B2B_CODE[e["type"]] for e in pe], np.int8),
            ev_lead=np.array(ev_lead, np.int64), ev_account=np.zeros(n_ev, dtype=np.int64),
            ev_topic=_codes(ce["topic"] + [e.get("topic") for e in pe], {}),
            ev_pos=np.full(n_ev, -1, dtype=np.int64),
        )

    def _b2c_frame(self, payload: dict) -> B2CFrame:
        cust = payload["customer"]
        ctx = self.context(str(cust["customer_id"]))
        c = dict(ctx.get("customer", {}))
        c.update({k: v for k, v in cust.items() if v is not None})
        ce = ctx.get("events") or _EMPTY_B2C_EVENTS
        seen = set(ce["event_id"])
        pe = [e for e in payload.get("events") or () if e.get("event_id") not in seen]
        co = ctx.get("orders") or {"ts": [], "amount": []}
        po = payload.get("orders") or []
        n_ev = len(ce["ts"]) + len(pe)
        return B2CFrame(
            cust_created=np.array([parse_time(c.get("created_at", c.get("created")))], dtype=np.int64),
            cust_channel=np.array([c.get("channel")], dtype=object),
            cust_device=np.array([c.get("device")], dtype=object),
            cust_consent_email=np.array([float(bool(c.get("consent_email")))]),
            cust_consent_sms=np.array([float(bool(c.get("consent_sms")))]),
            ev_ts=np.array(ce["ts"] + [parse_time(e["ts"]) for e in pe], np.int64),
            ev_type=np.array([B2C_CODE[t] for t in ce["type"]] + [B2C_CODE[e["type"]] for e in pe], np.int8),
            ev_cust=np.zeros(n_ev, dtype=np.int64), ev_pos=np.full(n_ev, -1, dtype=np.int64),
            ev_session=_codes(ce["session"] + [str(e.get("session_id")) for e in pe], {}),
            ev_category=_codes(ce["category"] + [e.get("category") for e in pe], {}),
            ev_price=np.array(ce["price"] + [e.get("price") for e in pe], np.float64),
            ev_qty=np.array(ce["quantity"] + [e.get("quantity") for e in pe], np.float64),
            ord_cust=np.zeros(len(co["ts"]) + len(po), dtype=np.int64),
            ord_ts=np.array(co["ts"] + [parse_time(o["ts"]) for o in po], np.int64),
            ord_amount=np.array(co["amount"] + [float(o["amount"]) for o in po], np.float64),
        )


_EMPTY_LEADS = {"lead_id": [], "created": [], "role": [], "seniority": [], "business": [], "stage": []}
_EMPTY_B2B_EVENTS = {"ts": [], "type": [], "lead": [], "topic": [], "event_id": []}
_EMPTY_B2C_EVENTS = {"ts": [], "type": [], "session": [], "category": [], "price": [], "quantity": [], "event_id": []}
