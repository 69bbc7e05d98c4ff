"""The event pipeline in-process on B2B and hybrid: an account's event re-scores every lead of the account, a lead
the account's context does not list waits, and account intent triggers are evaluated."""

from __future__ import annotations

import time

import orjson
import pandas as pd
import pytest

from features.online_store import key
from leadscore.errors import UserError
from leadscore.settings import Settings
from serving.stream import parse_duration, pipeline

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("motion", ["b2b", "hybrid"])
def test_an_account_event_rescores_every_lead_of_the_account(trained, b2b_dir, motion):
    leads = pd.read_parquet(b2b_dir / "leads.parquet")
    account = leads["account_id"].value_counts().index[0]
    with pipeline(Settings.load()) as ingest:
        ctx = orjson.loads(ingest.online.get_many([key(motion, account)])[0])
        n_leads = len(ctx["leads"]["lead_id"])
        lead = ctx["leads"]["lead_id"][0]
        now = time.time()
        events = [
            {"event_id": f"{motion}-{account}-{i}", "ts": now - 60 * i, "type": t, "account_id": account,
             "lead_id": lead if t != "third_party_intent" else None, "topic": "pricing"}
            for i, t in enumerate(["pricing_page", "demo_request", "third_party_intent", "pricing_page"])
        ] + [{"event_id": f"{motion}-{account}-x", "ts": now, "type": "pricing_page", "account_id": account,
              "lead_id": "L-not-yet"}]  # fmt: skip
        r = ingest.ingest(motion, events)
        assert (r["new"], r["pending"], r["entities_changed"], r["rescored"]) == (5, 1, 1, n_leads)
        after = orjson.loads(ingest.online.get_many([key(motion, account)])[0])
        assert set(after["events"]["event_id"]) >= {e["event_id"] for e in events[:4]}
        rows = ingest.store.query("SELECT entity_id, account_id FROM last_scores WHERE motion = ? AND account_id = ?",
                                  (motion, account))  # fmt: skip
        assert {x["entity_id"] for x in rows} == set(ctx["leads"]["lead_id"])
        again = ingest.ingest(motion, events[:4])
        assert (again["new"], again["duplicates"], again["rescored"]) == (0, 4, 0)
        with pytest.raises(UserError, match="account_id"):
            ingest.ingest(motion, [{"event_id": "z", "ts": now, "type": "pricing_page", "lead_id": lead}])


def test_events_applied_before_a_crash_are_rescored_and_recorded_when_retried(trained, b2b_dir):
    """A crash after the events reached the context but before the transaction that records them and keeps the
    scores: the caller got no answer and retries; the entity is re-scored from the context, the events recorded."""
    from features.online_events import apply_to_store, entity_of

    leads = pd.read_parquet(b2b_dir / "leads.parquet")
    account = leads["account_id"].value_counts().index[1]
    with pipeline(Settings.load()) as ingest:
        ctx = orjson.loads(ingest.online.get_many([key("b2b", account)])[0])
        lead, now = ctx["leads"]["lead_id"][0], time.time()
        events = [{"event_id": f"crash-{account}-{i}", "ts": now - 60 * i, "type": "pricing_page", "account_id": account,
                   "lead_id": lead} for i in range(3)]  # fmt: skip
        rows = ingest.rows("b2b", events)
        first = apply_to_store(
            "b2b", ingest.online, {entity_of("b2b", rows[0]): rows}, int(now)
        )  # then the crash
        assert first.changed == [account]
        r = ingest.ingest("b2b", events)
        assert (r["new"], r["duplicates"], r["entities_changed"], r["rescored"]) == (
            3,
            0,
            0,
            len(ctx["leads"]["lead_id"]),
        )
        states = ingest.store.query(
            "SELECT state FROM events_in WHERE event_id LIKE ?", (f"crash-{account}-%",)
        )
        assert [s["state"] for s in states] == ["applied"] * 3
        again = ingest.ingest("b2b", events)
        assert (again["new"], again["duplicates"], again["rescored"]) == (0, 3, 0)


def test_a_body_goes_in_parts_of_whole_entities_in_order():
    from serving.event_rows import entity_parts

    events = [{"event_id": f"e{i}", "customer_id": c} for i, c in enumerate("aabbbcdddde")]
    parts = entity_parts("b2c", events, 4)
    assert [[e["customer_id"] for e in p] for p in parts] == [
        ["a", "a"],
        ["b", "b", "b", "c"],
        ["d"] * 4,
        ["e"],
    ]
    assert [e["event_id"] for p in parts for e in p] == [f"e{i}" for i in range(11)]
    assert entity_parts("b2c", [{"event_id": "x", "customer_id": "big"}] * 6, 4) == [
        [{"event_id": "x", "customer_id": "big"}] * 6
    ]
    assert entity_parts("b2c", [], 4) == []


def test_durations_read_as_a_person_writes_them():
    assert (
        parse_duration("7d") == 7 * 86_400 and parse_duration("90s") == 90 and parse_duration("12h") == 43_200
    )
    assert parse_duration("1.5m") == 90 and parse_duration("3600") == 3600
    with pytest.raises(UserError, match="older-than"):
        parse_duration("a week")


def test_validated_events_become_the_same_records_as_pandas_gives():
    from serving.event_rows import records_of, validate

    events = [{"event_id": f"e{i}", "ts": 1790000000 + i, "type": "product_view" if i % 3 else "add_to_cart",
               "customer_id": f"C{i}", "session_id": f"s{i}", "product_id": None if i % 5 == 0 else "p1",
               "category": "books", "price": None if i % 4 == 0 else 12.5, "quantity": 2 if i % 2 else None}
              for i in range(50)]  # fmt: skip
    frame = validate("b2c", events, [e["ts"] for e in events])
    expected = frame.astype(object).where(frame.notna(), None).to_dict("records")
    got = records_of(frame)
    assert (
        got == expected
        and got[0]["price"] is None
        and got[1]["price"] == 12.5
        and got[0]["product_id"] is None
    )
    assert [type(v) for v in got[1].values()] == [type(v) for v in expected[1].values()]
