"""Events applied to the stored contexts give the online features a materialization that includes them gives,
for both motion families; a repeated event counts once; an event of an unknown entity waits."""

from __future__ import annotations

import time

import orjson
import pandas as pd
import pytest

from features.materialize import materialize
from features.online_events import apply_events, entity_of
from features.online_frame import OnlineFeatures
from features.online_store import key
from features.prepare import prepare
from leadscore.config import load_config
from leadscore.schema import load_dataset
from serving.context_requests import payloads as context_payloads

DAY = 86_400


class DictStore:
    """An online store in a dict (the protocol's calls)."""

    def __init__(self):
        self.d: dict[str, str] = {}

    def put_many(self, items):
        items = list(items)
        self.d.update(items)
        return len(items)

    def get_many(self, keys):
        return [self.d.get(k) for k in keys]

    def compare_and_set(self, k, old, new):
        if self.d.get(k) != old:
            return False
        self.d[k] = new
        return True

    def compare_and_set_many(self, items):
        return [self.compare_and_set(*item) for item in items]

    def close(self):
        pass


def _until(tables: dict, motion: str, cut: pd.Timestamp) -> dict:
    """Entities created by ``cut``, their events at any time, outcomes and orders by ``cut`` only."""
    t = {k: v.copy() for k, v in tables.items()}
    ent, col = ("customers", "customer_id") if motion == "b2c" else ("leads", "lead_id")
    t[ent] = t[ent][t[ent]["created_at"] <= cut]
    known = set(t[ent][col])
    ev = t["events"]
    t["events"] = ev[ev[col].isna() | ev[col].isin(known)] if motion != "b2c" else ev[ev[col].isin(known)]
    t["outcomes"] = t["outcomes"][t["outcomes"]["occurred_at"] <= cut]
    if "orders" in t:
        t["orders"] = t["orders"][t["orders"]["ts"] <= cut]
    return t


def _features(store: DictStore, motion: str, as_of: int) -> pd.DataFrame:
    conf = load_config(motion)
    online = OnlineFeatures(conf, store, memo_mb=0)
    payloads = [
        p | {"events": [], "orders": []}
        for raw in store.d.values()
        for p in context_payloads(motion, orjson.loads(raw))
    ]
    for p in payloads:  # as a /score request carries its entity
        if "lead" in p:
            p["lead"] |= {"stage": None, "source": None, "title": None}
    cols = online.compute_columns(payloads, as_of)
    ids = [p["customer"]["customer_id"] if "customer" in p else p["lead"]["lead_id"] for p in payloads]
    return pd.DataFrame(cols, index=ids).sort_index()


@pytest.mark.parametrize("motion", ["b2b", "b2c"])
def test_events_applied_to_contexts_equal_a_materialization_that_includes_them(motion, data_of):
    tables = load_dataset(data_of(motion), motion)
    end = tables["events"]["ts"].max()
    cut, t2 = end - pd.Timedelta(days=3), int(end.timestamp())
    tables = _until(tables, motion, cut)
    p = prepare(motion, tables)
    conf = load_config(motion)
    before, after = DictStore(), DictStore()
    materialize(p, int(cut.timestamp()), conf, before)
    materialize(p, t2, conf, after)
    ev = tables["events"]
    late = ev[ev["ts"] > cut].astype(object).where(ev[ev["ts"] > cut].notna(), None).to_dict("records")
    assert len(late) > 100
    for e in late:
        e["ts"] = int(pd.Timestamp(e["ts"]).timestamp())
    grouped: dict[str, list] = {}
    for e in late:
        grouped.setdefault(entity_of(motion, e), []).append(e)
    added = 0
    for entity, evs in grouped.items():
        k = key(motion, entity)
        raw = before.d.get(k)
        out = apply_events(motion, orjson.loads(raw) if raw else None, evs, t2)
        assert not out.pending  # every entity was materialized at the cut
        before.d[k] = orjson.dumps(out.context).decode()
        added += out.added
        again = apply_events(motion, out.context, evs, t2)  # a retried delivery
        assert (again.added, again.already) == (0, len(evs))
    assert added == len(late)
    a, b = _features(before, motion, t2), _features(after, motion, t2)
    assert list(a.index) == list(b.index) and len(a) > 100
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)


def test_an_event_of_an_entity_the_context_does_not_know_waits():
    e = {
        "event_id": "e1",
        "ts": 100,
        "type": "pricing_page",
        "account_id": "A",
        "lead_id": "L9",
        "topic": None,
    }
    assert apply_events("b2b", None, [e], 200).pending == [e]
    ctx = {"account": {"account_id": "A"}, "leads": {"lead_id": ["L1"], "created": [0], "role": [0],
           "seniority": [None], "business": [1.0], "stage": [0]}, "events": None}  # fmt: skip
    out = apply_events(
        "b2b", ctx, [e, e | {"event_id": "e2", "lead_id": "L1"}, e | {"event_id": "e3", "lead_id": None}], 200
    )
    assert [x["event_id"] for x in out.pending] == ["e1"] and out.added == 2
    assert out.context["events"]["lead"] == [0, -1] and out.context["events"]["event_id"] == ["e2", "e3"]
    old = {"event_id": "e0", "ts": 200 - 91 * DAY, "type": "page_view", "account_id": "A", "lead_id": None}
    assert apply_events("b2b", ctx, [old], 200).context["events"]["event_id"] == []  # beyond every window


def test_a_materialization_loses_no_event_taken_in_live(data_of, tmp_path):
    """Materialization rewrites contexts from the tables; the events taken in live are applied again, and one
    that waited for its customer is applied once the customer is known."""
    from features.online_events import replay
    from leadscore.store import Store

    tables = load_dataset(data_of("b2c"), "b2c")
    p = prepare("b2c", tables)
    t = int(tables["events"]["ts"].max().timestamp())
    conf, online, store = load_config("b2c"), DictStore(), Store(f"sqlite:///{tmp_path}/s.db")
    known = tables["customers"]["customer_id"].iloc[0]
    live = [
        {"event_id": "live-1", "ts": t - 60, "type": "add_to_cart", "customer_id": known, "session_id": "s",
         "category": "x", "price": 123.0, "quantity": 1.0},
        {"event_id": "live-2", "ts": t - 30, "type": "page_view", "customer_id": "nobody-yet", "session_id": "s"},
    ]  # fmt: skip
    store.executemany(
        "INSERT INTO events_in (motion, event_id, entity_id, ts, received_at, body, state) VALUES (?, ?, ?, ?, '', ?, ?)",
        [
            ("b2c", e["event_id"], e["customer_id"], e["ts"], orjson.dumps(e).decode(), "applied")
            for e in live
        ],
    )
    materialize(p, t, conf, online)
    first = replay("b2c", store, online, t)
    assert first.changed == [known] and first.applied == ["live-1"] and first.pending == ["live-2"]
    ctx = orjson.loads(online.d[key("b2c", known)])
    assert "live-1" in ctx["events"]["event_id"]
    assert replay("b2c", store, online, t).changed == []  # applied once
    online.d[key("b2c", "nobody-yet")] = orjson.dumps(
        {"customer": {"customer_id": "nobody-yet", "created": t - 99}}
    ).decode()
    assert replay("b2c", store, online, t).changed == ["nobody-yet"]
    states = dict((r["event_id"], r["state"]) for r in store.query("SELECT event_id, state FROM events_in"))
    assert states == {"live-1": "applied", "live-2": "applied"}


def test_events_in_window_keep_time_order_whether_or_not_they_arrive_in_it():
    from features.online_events import _in_window

    ordered = {"ts": [1, 5, 5, 9, 12], "event_id": ["a", "b", "c", "d", "e"]}
    assert _in_window(ordered, 5) == {"ts": [9, 12], "event_id": ["d", "e"]}  # the expired head cut off
    assert _in_window(ordered, 0) is ordered
    late = {"ts": [1, 5, 9, 12, 5, 3], "event_id": ["a", "b", "d", "e", "c", "x"]}  # two arrive late
    assert _in_window(late, 2) == {"ts": [3, 5, 5, 9, 12], "event_id": ["x", "b", "c", "d", "e"]}  # stable


def test_late_events_land_where_a_stable_sort_of_all_events_puts_them():
    from features.b2c_events import coded
    from features.online_events import _in_window, apply_events

    def ctx(ts: list[int]) -> dict:
        n = len(ts)
        return {"customer": {"customer_id": "A"}, "events": {
            "ts": list(ts), "type": ["page_view"] * n, "session": ["s"] * n, "category": [None] * n, "price": [None] * n,
            "quantity": [None] * n, "event_id": [f"old{i}" for i in range(n)]}}  # fmt: skip

    new = [
        {"event_id": f"new{i}", "ts": t, "type": "search", "session_id": "s"}
        for i, t in enumerate([7, 5, 20, 5, 1])
    ]
    for stored in (
        [1, 5, 5, 9, 12],
        [9, 1, 5, 12, 5],
    ):  # in time order (insertion), and not (the stable sort)
        got = apply_events("b2c", ctx(stored), new, now=30, owned=True).context["events"]
        whole = ctx(stored)["events"]
        for e in new:
            for k, v in {"ts": e["ts"], "type": e["type"], "session": "s", "category": None, "price": None,
                         "quantity": None, "event_id": e["event_id"]}.items():  # fmt: skip
                whole[k].append(v)
        assert got == _in_window(coded(whole), 30 - 90 * 86_400), (
            stored
        )  # (stored coded: features.b2c_events)


class RacingStore(DictStore):
    """Another process writes the contexts in ``race`` between this one's read and its first write."""

    def __init__(self, race: dict[str, str]):
        super().__init__()
        self.race, self.writes = race, 0

    def compare_and_set_many(self, items):
        self.d.update(self.race)
        self.race, self.writes = {}, self.writes + 1
        return super().compare_and_set_many(items)


def test_contexts_another_process_wrote_first_are_read_again_and_lose_no_event():
    from features.online_events import apply_to_store

    def event(i: str, cust: str) -> dict:
        return {"event_id": i, "ts": 20, "type": "search", "customer_id": cust, "session_id": "s"}

    def stored(cust: str, *events: dict) -> str:
        start = {"customer": {"customer_id": cust}, "events": None}
        return orjson.dumps(apply_events("b2c", start, list(events), now=30).context).decode()

    # the other process applied its own event to A, and B's very event, first; C is left alone
    store = RacingStore(
        {key("b2c", "A"): stored("A", event("a0", "A")), key("b2c", "B"): stored("B", event("b1", "B"))}
    )
    store.d |= {key("b2c", c): stored(c) for c in "ABC"}
    got = apply_to_store("b2c", store, {c: [event(f"{c.lower()}1", c)] for c in "ABC"}, now=30)
    held = {c: orjson.loads(store.d[key("b2c", c)])["events"]["event_id"] for c in "ABC"}
    assert held == {"A": ["a0", "a1"], "B": ["b1"], "C": ["c1"]} and store.writes == 2  # A read again, once
    assert (
        sorted(got.changed) == ["A", "C"] and got.held == ["B"] and sorted(got.applied) == ["a1", "b1", "c1"]
    )
    assert all(got.texts[c] == store.d[key("b2c", c)] for c in "ABC")  # the texts stored, not the lost tries


def _pandas_rows(motion: str, events: list[dict], stamps: list[int]) -> list[dict]:
    """The events read through the table's frame rules (``coerce``), as ``event_rows.canonical_rows`` does for a body
    that needs casting."""
    from serving.event_rows import records_of, validate

    rows = records_of(validate(motion, events, stamps).drop(columns="ts"))
    return [r | {"ts": t} for r, t in zip(rows, stamps, strict=True)]


def test_a_plain_body_reads_as_the_table_rules_read_it_and_anything_else_goes_to_them():
    from leadscore.schema import TABLES, plain_rows

    now = int(time.time())
    b2c = [
        {"event_id": "e1", "ts": now, "customer_id": "c1", "session_id": "s", "type": "add_to_cart",
         "category": "books", "price": 12, "quantity": 2.0, "extra": "ignored"},
        {"event_id": "e2", "ts": now - 60, "customer_id": "c1", "session_id": "s", "type": "page_view",
         "price": None},
        {"event_id": "e3", "ts": now - 90, "customer_id": "c2", "session_id": "", "type": "search",
         "product_id": "p", "price": 0.0},
    ]  # fmt: skip
    b2b = [
        {"event_id": "x1", "ts": now, "account_id": "a", "lead_id": "l", "type": "pricing_page", "topic": "t"},
        {"event_id": "x2", "ts": now, "account_id": "a", "type": "third_party_intent"},
    ]  # fmt: skip
    for motion, events in (("b2c", b2c), ("b2b", b2b)):
        stamps = [e["ts"] for e in events]
        plain = plain_rows(TABLES[motion]["events"], events, stamps)
        assert plain is not None
        assert plain == _pandas_rows(motion, events, stamps)
        assert [list(r) for r in plain] == [list(r) for r in _pandas_rows(motion, events, stamps)]
    table = TABLES["b2c"]["events"]
    for change in (
        {"type": "teleport"},  # a rule broken: the rules name it
        {"customer_id": None},
        {"price": -1.0},
        {"price": float("inf")},
        {"price": float("nan")},
        {"price": "12.5"},  # values to cast: the frame casts them
        {"price": True},
        {"event_id": 7},
        {"ts": now + 3 * 86400},  # in the future
    ):
        events = [b2c[0] | change, b2c[1]]
        assert plain_rows(table, events, [e["ts"] for e in events]) is None, change
    good = [e | {"price": "12.5"} for e in b2c]
    stamps = [e["ts"] for e in good]
    assert _pandas_rows("b2c", good, stamps)[0]["price"] == 12.5  # what the frame path makes of it


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_events_that_left_the_longest_window_are_pruned_a_part_at_a_time(backend, tmp_path, request):
    """``events_in`` keeps what a context or a replay can still use: events at or before now − the longest window
    go (applied or pending, in parts), newer ones and other motions' stay; a second prune finds nothing."""
    from features.online_events import prune
    from features.point_in_time import MAX_WINDOW
    from leadscore.store import Store

    url = f"sqlite:///{tmp_path}/s.db" if backend == "sqlite" else request.getfixturevalue("pg_schema_url")
    store, now = Store(url), 1_800_000_000
    cut = now - MAX_WINDOW
    rows = [("b2c", f"old-{i}", "C1", cut - i, "applied") for i in range(5)] + [
        ("b2c", "old-pending", "C2", cut - 100, "pending"),
        ("b2c", "new", "C1", cut + 1, "applied"),
        ("b2b", "other-motion", "A1", cut - 5, "applied"),
    ]
    store.executemany(
        "INSERT INTO events_in (motion, event_id, entity_id, ts, received_at, body, state) VALUES (?, ?, ?, ?, '', '{}', ?)",
        rows,
    )
    assert prune(store, "b2c", now, part=2) == 6
    left = {(r["motion"], r["event_id"]) for r in store.query("SELECT motion, event_id FROM events_in")}
    assert left == {("b2c", "new"), ("b2b", "other-motion")}
    assert prune(store, "b2c", now) == 0
    store.close()


def test_the_ingest_prunes_every_motion_at_most_once_an_hour(tmp_path, monkeypatch):
    from features.point_in_time import MAX_WINDOW
    from leadscore.store import Store, StoreUnavailable
    from serving.events import EventIngest

    store = Store(f"sqlite:///{tmp_path}/s.db")
    old = int(time.time()) - MAX_WINDOW - 10
    insert = "INSERT INTO events_in (motion, event_id, entity_id, ts, received_at, body, state) VALUES (?, ?, 'e', ?, '', '{}', 'applied')"
    store.executemany(insert, [("b2c", "a", old), ("b2b", "b", old), ("b2c", "c", int(time.time()))])
    ingest = EventIngest.__new__(EventIngest)  # the pruning alone: no scorer, journal or webhooks
    ingest.store, ingest._pruned = store, None
    assert ingest.prune_due() == 2  # at once (also within a machine's first hour: the clock is monotonic)
    store.executemany(insert, [("b2c", "d", old)])
    assert ingest.prune_due() == 0  # within the hour: not yet
    ingest._pruned -= 3601
    assert ingest.prune_due() == 1
    store.executemany(insert, [("b2c", "f", old)])
    ingest._pruned -= 3601

    def down(*_):
        raise StoreUnavailable("the store is not reachable")

    monkeypatch.setattr("serving.events.prune", down)  # the store is down: the prune fails ...
    with pytest.raises(StoreUnavailable):
        ingest.prune_due()
    monkeypatch.undo()
    assert ingest.prune_due() == 1  # ... and is tried again at the next call, not an hour later
    store.close()
