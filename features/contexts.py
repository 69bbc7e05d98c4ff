"""Stored contexts decoded into arrays once, and a memo of them bounded by memory.

A context's stored text is the memo's key, so a context that materialization rewrites is decoded anew on its
next read; least recently used entries leave first.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson
import pandas as pd

from features.b2c_events import coded
from features.frames import B2B_CODE, B2CFrame, object_array, spans
from features.online_store import OnlineStore, key
from leadscore import motions
from leadscore.times import epoch_seconds

log = logging.getLogger("leadscore.features")


@dataclass(frozen=True, slots=True)
class B2BContext:
    """An account's stored context decoded into arrays once (memoised by its stored text): its contacts in
    local rows, its events with local lead rows (-1: account-level) and local topic codes into ``topics``."""

    account: dict[str, Any]
    lead_row: dict[str, int]
    lead_ints: np.ndarray  # per contact: created, role, stage (int64)
    lead_floats: np.ndarray  # per contact: seniority, business (float64)
    events: np.ndarray  # per event: ts, type, lead, topic (int64)
    topics: tuple[str, ...]
    event_ids: frozenset[str]

    # A batch lays its contexts end to end three blocks at a time, not one field at a time (1,000 accounts: three
    # concatenations of 1,000 arrays instead of nine); the two fields read one context at a time are views.
    @property
    def stage(self) -> np.ndarray:
        return self.lead_ints[:, 2]

    @property
    def ev_ts(self) -> np.ndarray:
        return self.events[:, 0]


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
    codes, vocab = _code_list(values)
    return np.array(codes, dtype=np.int64), vocab


def _code_list(values: list) -> tuple[list[int], tuple]:
    """``_codes`` as a list."""
    vocab: dict = {}
    return [vocab.setdefault(v, len(vocab)) if v is not None else -1 for v in values], tuple(vocab)


def _block(columns: list, dtype: type) -> np.ndarray:
    """Equally long columns side by side: one row per item (shape (n, k), also when n is 0)."""
    return np.array(columns, dtype=dtype).reshape(len(columns), -1).T.copy()


def _frozen(context: Any) -> Any:
    """Make a decoded context's arrays read-only: the memo shares them with every batch that reads it."""
    for name in context.__slots__:
        if isinstance(v := getattr(context, name), np.ndarray):
            v.flags.writeable = False
    return context


def decode_b2b(ctx: dict) -> B2BContext:
    leads, ev = ctx.get("leads") or _EMPTY_LEADS, ctx.get("events") or _EMPTY_B2B_EVENTS
    topic, topics = _codes(ev["topic"])
    return _frozen(
        B2BContext(
            account=ctx.get("account", {}),
            lead_row={k: j for j, k in enumerate(leads["lead_id"])},
            lead_ints=_block([leads["created"], leads["role"], leads["stage"]], np.int64),
            lead_floats=_block([leads["seniority"], leads["business"]], np.float64),
            events=_block([ev["ts"], [B2B_CODE[t] for t in ev["type"]], ev["lead"], topic], np.int64),
            topics=topics,
            event_ids=frozenset(ev["event_id"]),
        )
    )


def decode_b2c(ctx: dict) -> B2CContext:
    """One customer's stored context (``decode_b2c_many`` decodes many at once, the same way: tested equal; this
    one is cheaper for a single context, as /score reads them). Its events coded (``features.b2c_events``)."""
    ev, orders = coded(ctx.get("events")), ctx.get("orders") or _EMPTY_ORDERS
    return _frozen(
        B2CContext(
            customer=ctx.get("customer", {}),
            ev_ts=np.array(ev["ts"], np.int64),
            ev_type=np.array(ev["type"], np.int8),
            ev_session=np.array(ev["session"], np.int64),
            sessions={k: j for j, k in enumerate(ev["sessions"])},
            ev_category=np.array(ev["category"], np.int64),
            categories=tuple(ev["categories"]),
            ev_price=np.array(ev["price"], np.float64),
            ev_qty=np.array(ev["quantity"], np.float64),
            event_ids=frozenset(ev["event_id"]),
            ord_ts=np.array(orders["ts"], np.int64),
            ord_amount=np.array(orders["amount"], np.float64),
        )
    )


def decode_b2c_many(ctxs: list[dict]) -> list[B2CContext]:
    """Customers' stored contexts decoded at once: each column built once for all of them and each context's
    arrays read-only views into it (a context's own arrays cost more to build than its few dozen events do)."""
    evs = [coded(c.get("events")) for c in ctxs]
    orders = [c.get("orders") or _EMPTY_ORDERS for c in ctxs]

    def column(parts: list[dict], name: str, dtype: Any) -> np.ndarray:
        return _readonly(np.array(list(chain.from_iterable(p[name] for p in parts)), dtype))

    ts, ev_type, session, category, price, qty = (
        column(evs, name, dtype)
        for name, dtype in (("ts", np.int64), ("type", np.int8), ("session", np.int64), ("category", np.int64),
                            ("price", np.float64), ("quantity", np.float64))
    )  # fmt: skip
    o_ts, o_amount = column(orders, "ts", np.int64), column(orders, "amount", np.float64)
    out = []
    e0 = o0 = 0
    for c, e, o in zip(ctxs, evs, orders, strict=True):
        e1, o1 = e0 + len(e["ts"]), o0 + len(o["ts"])
        out.append(
            B2CContext(
                customer=c.get("customer", {}), ev_ts=ts[e0:e1], ev_type=ev_type[e0:e1], ev_session=session[e0:e1],
                sessions={k: j for j, k in enumerate(e["sessions"])}, ev_category=category[e0:e1],
                categories=tuple(e["categories"]), ev_price=price[e0:e1], ev_qty=qty[e0:e1],
                event_ids=frozenset(e["event_id"]), ord_ts=o_ts[o0:o1], ord_amount=o_amount[o0:o1],
            )
        )  # fmt: skip
        e0, o0 = e1, o1
    return out


def customer_fields(stored: dict[str, Any], given: dict[str, Any]) -> tuple[int, Any, Any, float, float]:
    """A customer's frame fields (created, channel, device, consent_email, consent_sms): the request's values over
    the stored ones (a value the request leaves out or sends as null is the stored one)."""

    def value(k: str) -> Any:
        v = given.get(k)
        return v if v is not None else stored.get(k)

    if given.get("created_at") is not None:
        created = given["created_at"]
    else:
        created = stored["created_at"] if "created_at" in stored else value("created")
    return (epoch_seconds(created), value("channel"), value("device"), float(bool(value("consent_email"))),
            float(bool(value("consent_sms"))))  # fmt: skip


def b2c_frame_of(ctxs: list[dict], customers: list[dict]) -> B2CFrame:
    """The frame of customers scored from their stored contexts alone (re-scores after events: ``customers``,
    request i's customer fields over context i's; no events or orders of their own), each column built for all of
    them at once from the coded events (``features.b2c_events``): the frame ``OnlineFeatures`` assembles from
    decoded contexts (tested equal), without a context object or a Python step per stored event. Session codes:
    each customer's own, customer after customer; category codes: in order of first appearance in the customers'
    vocabularies (-1: none)."""
    evs = [coded(c.get("events")) for c in ctxs]
    orders = [c.get("orders") or _EMPTY_ORDERS for c in ctxs]

    def column(parts: list[dict], name: str, dtype: Any) -> np.ndarray:
        return np.fromiter(
            chain.from_iterable(p[name] for p in parts), dtype, sum(len(p[name]) for p in parts)
        )

    _, owner = spans([len(e["ts"]) for e in evs])
    session_base, _ = spans([len(e["sessions"]) for e in evs])
    vocab_base, _ = spans([len(e["categories"]) for e in evs])
    names = object_array(list(chain.from_iterable(e["categories"] for e in evs)))
    global_category = np.append(pd.factorize(names)[0].astype(np.int64), -1)  # (last: none)
    local = column(evs, "category", np.int64)
    fields = [customer_fields(c.get("customer", {}), g) for c, g in zip(ctxs, customers, strict=True)]
    created, channel, device, email, sms = (
        (list(f) for f in zip(*fields, strict=True)) if fields else ([],) * 5
    )
    return B2CFrame(
        cust_created=np.array(created, dtype=np.int64),
        cust_channel=object_array(channel),
        cust_device=object_array(device),
        cust_consent_email=np.array(email, np.float64),
        cust_consent_sms=np.array(sms, np.float64),
        ev_ts=column(evs, "ts", np.int64),
        ev_type=column(evs, "type", np.int8),
        ev_cust=owner,
        ev_pos=np.full(len(owner), -1, dtype=np.int64),
        ev_session=session_base[owner] + column(evs, "session", np.int64),
        ev_category=global_category[np.where(local >= 0, vocab_base[owner] + local, -1)],
        ev_price=np.array(list(chain.from_iterable(e["price"] for e in evs)), np.float64),
        ev_qty=np.array(list(chain.from_iterable(e["quantity"] for e in evs)), np.float64),
        ord_cust=spans([len(o["ts"]) for o in orders])[1],
        ord_ts=column(orders, "ts", np.int64),
        ord_amount=column(orders, "amount", np.float64),
    )


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


MEMO_COST = 5  # an entry's memory, in multiples of its stored text (the text, and arrays about four times it)

Context = B2BContext | B2CContext


class ContextMemo:
    """The decoded stored context of each entity of one motion, within ``memo_mb`` megabytes.

    Entries are found by entity id and used only while the store still holds the very text they were decoded
    from (a string comparison, which stops at the first differing byte, instead of hashing every context read:
    a 1,000-lead batch reads about 3 MB of them)."""

    def __init__(self, motion: str, store: OnlineStore | None, memo_mb: float = 64):
        self.motion, self.store = motion, store
        self.memo_bytes = int(memo_mb * 2**20)
        self._memo: OrderedDict[str, tuple[str, Context]] = OrderedDict()  # entity id → (text, decoded)
        self._used = 0
        self.failed_reads = 0
        b2c = motions.get(motion).family == "b2c"
        self._decode = decode_b2c if b2c else decode_b2b
        self._decode_many: Callable[[list[dict]], list[Any]] = (
            decode_b2c_many if b2c else lambda ctxs: [decode_b2b(c) for c in ctxs]
        )
        self.empty: Context = self._decode({})

    def __len__(self) -> int:
        return len(self._memo)

    @property
    def used_bytes(self) -> int:
        """The memory the memo counts its entries at (within ``memo_bytes``)."""
        return self._used

    def get_many(self, keys: list[str]) -> list[Any]:
        """The decoded stored context of each entity id (an empty one where nothing is stored)."""
        return self.read(keys)[0]

    def read(
        self, keys: list[str], written: Mapping[str, tuple[str, dict]] | None = None
    ) -> tuple[list[Any], bool]:
        """The decoded stored context of each entity id, and whether the store could not be read: then each
        entity gets the context it had when last read (if the memo still holds it) or an empty one, so scoring
        goes on from the request's own data. ``written``: contexts the caller has just stored, by entity id (their
        text and their JSON form), taken as they are rather than read back."""
        empty = self.empty
        if self.store is None:
            return [empty] * len(keys), False
        memo = self._memo
        written = written or {}
        try:
            rest = [k for k in keys if k not in written]
            found = (
                dict(zip(rest, self.store.get_many([key(self.motion, k) for k in rest]), strict=True))
                if rest
                else {}
            )
            stored = [written[k][0] if k in written else found[k] for k in keys]
        except Exception as exc:  # the online store is down: degrade, never fail the request
            self.failed_reads += 1
            log.warning(
                "online store read failed (%s): scoring %d entities from the request and the memo",
                exc,
                len(keys),
            )
            return [memo[k][1] if k in memo else empty for k in keys], True
        out: list[Any] = []
        fresh: list[int] = []  # contexts just written: decoded together below, and not kept (the next event
        for k, raw in zip(keys, stored, strict=True):  # for the entity writes another)
            if not raw:
                out.append(empty)
                continue
            hit = memo.get(k)
            if hit is not None and hit[0] == raw:
                memo.move_to_end(k)
                out.append(hit[1])
                continue
            if k in written:
                fresh.append(len(out))
                out.append(None)
                continue
            d = self._decode(orjson.loads(raw))
            self._remember(k, raw, d)
            out.append(d)
        if fresh:
            decoded = self._decode_many([written[keys[i]][1] for i in fresh])
            for i, d in zip(fresh, decoded, strict=True):
                out[i] = d
        return out, False

    def _remember(self, entity: str, raw: str, context: Context) -> None:
        """Keep an entity's decoded context (replacing an older one), then drop the least recently used ones
        until the memo fits its budget."""
        old = self._memo.pop(entity, None)
        if old is not None:
            self._used -= MEMO_COST * len(old[0])
        cost = MEMO_COST * len(raw)
        if cost > self.memo_bytes:
            return
        self._memo[entity] = (raw, context)
        self._used += cost
        while self._used > self.memo_bytes:
            _, (text, _) = self._memo.popitem(last=False)
            self._used -= MEMO_COST * len(text)


_EMPTY_LEADS: dict[str, list[Any]] = {
    "lead_id": [],
    "created": [],
    "role": [],
    "seniority": [],
    "business": [],
    "stage": [],
}
_EMPTY_B2B_EVENTS: dict[str, list[Any]] = {"ts": [], "type": [], "lead": [], "topic": [], "event_id": []}
_EMPTY_ORDERS: dict[str, list[Any]] = {"ts": [], "amount": []}
