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


def test_customers_scored_from_their_stored_contexts_get_the_frame_and_features_of_the_decoded_path():
    from features.contexts import b2c_frame_of
    from features.online_frame import OnlineFeatures
    from leadscore.config import load_config

    ctxs = _contexts()
    ctxs[0]["events"]["session"][1] = "7"  # with a session id given as a number too (7): one session, as text
    ctxs[0]["events"]["session"].append(7)
    for k, v in (("ts", 35), ("type", "product_view"), ("category", "books"), ("price", 1.0), ("quantity", None),
                 ("event_id", "a4")):  # fmt: skip
        ctxs[0]["events"][k].append(v)
    ctxs[2]["events"]["session"] = ["s1"]  # another customer's session id: a session of its own
    ctxs.append({"customer": {"customer_id": "D", "created": 4, "channel": "email", "consent_email": False},
                 "events": {"ts": [50, 60], "type": ["add_to_cart", "product_view"], "session": ["d", "d"],
                            "category": [None, "garden"], "price": [20.0, 2.0], "quantity": [1.0, None],
                            "event_id": ["d1", "d2"]}})  # fmt: skip
    texts = {c["customer"]["customer_id"]: orjson.dumps(c).decode() for c in ctxs}
    store = _Store({key("b2c", k): v for k, v in texts.items()})
    given = [
        {"customer_id": c["customer"]["customer_id"], "created_at": c["customer"]["created"]} for c in ctxs
    ]
    given[3] |= {"consent_email": True, "device": "mobile"}  # the request's fields over the stored ones
    payloads = [{"motion": "b2c", "customer": g} for g in given]
    online = OnlineFeatures(load_config("b2c"), store)  # type: ignore[arg-type]
    decoded = online._b2c_frame(payloads, None, None)
    fast = b2c_frame_of(ctxs, given)
    for f in dataclasses.fields(decoded):
        a, b = getattr(decoded, f.name), getattr(fast, f.name)
        assert a.dtype == b.dtype, f.name
        np.testing.assert_array_equal(a, b, err_msg=f.name)
    assert fast.ev_session.tolist() == [0, 1, 0, 1, 2, 3, 3] and fast.ev_category.tolist() == [
        0,
        -1,
        1,
        0,
        1,
        -1,
        2,
    ]
    assert fast.cust_consent_email.tolist() == [0.0, 0.0, 0.0, 1.0] and fast.cust_device[3] == "mobile"
    as_of = 100
    stored = online.compute_stored(ctxs, as_of)  # (the stored customer fields only)
    read_back = OnlineFeatures(load_config("b2c"), store).compute_columns(  # type: ignore[arg-type]
        [{"motion": "b2c", "customer": {"customer_id": c["customer"]["customer_id"],
                                        "created_at": c["customer"]["created"]}} for c in ctxs], as_of)  # fmt: skip
    assert stored.keys() == read_back.keys()
    for k in read_back:
        np.testing.assert_array_equal(stored[k], read_back[k], err_msg=k)
