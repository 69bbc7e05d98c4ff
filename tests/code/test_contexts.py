"""Stored contexts decoded into arrays: many at once (the events path's contexts just written) exactly as one at a
time, and the memo takes contexts just written as they are instead of reading them back."""

from __future__ import annotations

import dataclasses

import numpy as np
import orjson

from features.contexts import ContextMemo, decode_b2c, decode_b2c_many
from features.frames import B2C_CODE
from features.online_store import key


def _contexts() -> list[dict]:
    return [
        {"customer": {"customer_id": "A", "created": 1}, "events": {
            "ts": [10, 20, 30], "type": ["product_view", "add_to_cart", "search"], "session": ["s1", 7, "s1"],
            "category": ["books", None, "toys"], "price": [12.0, None, 3.5], "quantity": [None, 2.0, 1.0],
            "event_id": ["a1", "a2", "a3"]}, "orders": {"ts": [5], "amount": [99.0]}},
        {"customer": {"customer_id": "B", "created": 2}, "events": None, "orders": None},
        {"customer": {"customer_id": "C", "created": 3}, "events": {
            "ts": [40], "type": ["purchase"], "session": ["x"], "category": ["toys"], "price": [8.0],
            "quantity": [1.0], "event_id": ["c1"]}, "orders": {"ts": [], "amount": []}},
    ]  # fmt: skip


def test_many_contexts_decode_as_each_one_does_alone_and_read_only():
    ctxs = _contexts()
    for one, many in zip([decode_b2c(c) for c in ctxs], decode_b2c_many(ctxs), strict=True):
        for f in dataclasses.fields(one):
            a, b = getattr(one, f.name), getattr(many, f.name)
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype and not b.flags.writeable, f.name
                np.testing.assert_array_equal(a, b, err_msg=f.name)
            else:
                assert a == b, f.name
    assert decode_b2c_many([]) == []
    a = decode_b2c(ctxs[0])  # the stored JSON form read as the feature code needs it
    assert a.sessions == {"s1": 0, "7": 1} and a.ev_session.tolist() == [0, 1, 0]
    assert a.categories == ("books", "toys") and a.ev_category.tolist() == [0, -1, 1]
    assert a.ev_type.tolist() == [B2C_CODE[t] for t in ("product_view", "add_to_cart", "search")]
    np.testing.assert_array_equal(a.ev_price, [12.0, np.nan, 3.5])
    assert a.ev_ts.tolist() == [10, 20, 30] and a.ord_ts.tolist() == [5] and a.ord_amount.tolist() == [99.0]
    assert a.event_ids == {"a1", "a2", "a3"} and len(decode_b2c(ctxs[1]).ev_ts) == 0


class _Store:
    def __init__(self, d: dict[str, str]):
        self.d, self.reads = d, 0

    def get_many(self, keys: list[str]) -> list[str | None]:
        self.reads += len(keys)
        return [self.d.get(k) for k in keys]


def test_the_memo_takes_contexts_just_written_without_reading_them_back():
    motion = "b2c"
    ctxs = _contexts()
    texts = {c["customer"]["customer_id"]: orjson.dumps(c).decode() for c in ctxs}
    store = _Store({key(motion, k): v for k, v in texts.items()})
    memo = ContextMemo(motion, store)  # type: ignore[arg-type]
    written = {"A": (texts["A"], ctxs[0]), "C": (texts["C"], ctxs[2])}
    got, failed = memo.read(["A", "B", "C"], written)
    assert not failed and store.reads == 1  # B only
    assert [sorted(g.event_ids) for g in got] == [["a1", "a2", "a3"], [], ["c1"]]
    got_again, _ = memo.read(["A", "C"])  # read back later: decoded from the store, the same
    assert store.reads == 3 and [sorted(g.event_ids) for g in got_again] == [["a1", "a2", "a3"], ["c1"]]
