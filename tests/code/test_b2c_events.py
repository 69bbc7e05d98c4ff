"""A customer's stored events, coded: the text of each event is what it was (before or after old events leave the
window), contexts stored uncoded read the same, and vocabularies stay bounded by the events."""

from features.b2c_events import coded
from features.frames import B2C_CODE
from features.online_events import _in_window, apply_events

TYPES = {v: k for k, v in B2C_CODE.items()}


def _texts(ev: dict) -> list[tuple]:
    """Each event as its text fields read: (type, session, category)."""
    return [(TYPES[t], ev["sessions"][s], ev["categories"][c] if c >= 0 else None)
            for t, s, c in zip(ev["type"], ev["session"], ev["category"], strict=True)]  # fmt: skip


def test_uncoded_events_code_to_the_same_texts_and_coded_ones_stay_as_they_are():
    plain = {"ts": [1, 2, 3], "type": ["product_view", "search", "product_view"], "session": ["a", 7, "7"],
             "category": ["books", None, "books"], "price": [1.0, None, 2.0], "quantity": [None, None, 1.0],
             "event_id": ["e1", "e2", "e3"]}  # fmt: skip
    ev = coded(plain)
    assert _texts(ev) == [
        ("product_view", "a", "books"),
        ("search", "7", None),
        ("product_view", "7", "books"),
    ]
    assert ev["session"] == [0, 1, 1] and ev["sessions"] == ["a", "7"]  # session ids read as text
    assert ev["category"] == [0, -1, 0] and ev["categories"] == ["books"]
    assert {k: ev[k] for k in ("ts", "price", "quantity", "event_id")} == {
        k: plain[k] for k in ("ts", "price", "quantity", "event_id")
    }
    assert coded(ev) is ev and coded(None) == coded({}) == {k: [] for k in ev}


def test_old_events_leaving_the_window_keep_every_event_text_and_the_vocabularies_bounded():
    day = 86_400
    ctx = {"customer": {"customer_id": "C"}, "events": None}
    for i in range(200):  # a session and a category of its own per event, over 200 days
        e = {"event_id": f"e{i}", "ts": i * day, "type": "product_view", "session_id": f"s{i}",
             "category": f"c{i % 150}", "price": 1.0}  # fmt: skip
        done = apply_events("b2c", ctx, [e], now=i * day, owned=True)
        assert done.added == 1
        ctx = done.context
    ev = ctx["events"]
    kept = list(range(200 - 90, 200))  # the 90-day window
    assert ev["ts"] == [i * day for i in kept]
    assert _texts(ev) == [("product_view", f"s{i}", f"c{i % 150}") for i in kept]
    assert len(ev["sessions"]) <= len(ev["ts"]) and len(ev["categories"]) <= len(ev["ts"])
    # a late event, and one cut at once: the stable time order, texts intact
    late = apply_events("b2c", ctx, [{"event_id": "late", "ts": 150 * day + 1, "type": "search", "session_id": "s0"},
                                     {"event_id": "old", "ts": 5, "type": "search", "session_id": "x"}],
                        now=199 * day)  # fmt: skip
    ev2 = late.context["events"]
    assert ev2["event_id"].index("late") == ev2["ts"].index(150 * day + 1) and "old" not in ev2["event_id"]
    assert _texts(ev2)[ev2["event_id"].index("late")] == ("search", "s0", None)
    assert ev["event_id"] == [f"e{i}" for i in kept]  # (not owned: the stored context is untouched)
    again = _in_window(ev2, 0)
    assert again is ev2


def test_many_events_at_once_code_as_one_at_a_time():
    events = [{"event_id": f"e{i}", "ts": 100 + i, "type": "search", "session_id": f"s{i % 4}",
               "category": None if i % 3 else f"c{i % 2}"} for i in range(12)]  # fmt: skip
    start = {"customer": {"customer_id": "C"}, "events": coded(None)}
    at_once = apply_events("b2c", start, events, now=200).context["events"]  # (indexed: more than 8)
    one_by_one = start
    for e in events:
        one_by_one = apply_events("b2c", one_by_one, [e], now=200).context  # (searched)
    assert at_once == one_by_one["events"]
    assert _texts(at_once) == [("search", f"s{i % 4}", None if i % 3 else f"c{i % 2}") for i in range(12)]
