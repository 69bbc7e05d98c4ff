"""The Redis Stream consumer against the real Redis: a consumer killed mid-stream loses nothing (the next one claims
its pending entries), bad entries are dead-lettered, and decay re-scoring fires score-drop triggers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import orjson
import pandas as pd
import pytest
import redis
from typer.testing import CliRunner

from cli.app import app
from features.online_store import key, open_store
from leadscore import score_rows
from leadscore.settings import Settings
from leadscore.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.services]


def _cli(*args: str):
    r = CliRunner().invoke(app, ["--json", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.output.strip().splitlines()[-1])


def test_a_consumer_killed_mid_stream_loses_nothing(trained, b2c_dir, redis_url):
    r = redis.Redis.from_url(redis_url)
    stream = f"leadscore-test-{uuid.uuid4().hex[:8]}"
    customers = pd.read_parquet(b2c_dir / "customers.parquet")["customer_id"].tolist()[:300]
    now = time.time()
    ids = []
    pipe = r.pipeline()
    for i in range(2400):
        eid = f"{stream}-{i}"
        ids.append(eid)
        event = {"event_id": eid, "ts": now - 600 + i * 0.1, "type": "page_view", "customer_id": customers[i % 300],
                 "session_id": f"s{i // 50}", "category": "books"}  # fmt: skip
        pipe.xadd(stream, {"motion": "b2c", "event": orjson.dumps(event)})
    pipe.xadd(stream, {"motion": "b2c", "event": b"{not json"})
    pipe.xadd(stream, {"motion": "b2c", "event": orjson.dumps({"event_id": "bad", "ts": now, "type": "teleport",
                                                                "customer_id": customers[0], "session_id": "s"})})  # fmt: skip
    pipe.execute()
    # a consumer that read 40 entries and died before acknowledging them
    r.xgroup_create(stream, "leadscore", id="0")
    ghost = r.xreadgroup("leadscore", "ghost", {stream: ">"}, count=40)[0][1]
    assert len(ghost) == 40
    # a real consumer, killed -9 while it works through the stream
    cmd = [sys.executable, "-m", "cli", "events", "consume", "--from", redis_url, "--stream", stream,
           "--consumer", "doomed", "--batch", "25"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        groups = {g["name"].decode(): g for g in r.xinfo_groups(stream)}
        if groups["leadscore"]["entries-read"] and groups["leadscore"]["entries-read"] > 400:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    pending = r.xpending(stream, "leadscore")["pending"]
    assert pending >= 40  # the ghost's, and the doomed consumer's batch in flight if it had one
    done = _cli("events", "consume", "--from", redis_url, "--stream", stream, "--consumer", "next",
                "--claim-idle-ms", "300", "--until-empty")  # fmt: skip
    assert done["claimed from other consumers"] >= 40 and done["dead-lettered"] == 2
    assert r.xpending(stream, "leadscore")["pending"] == 0
    dead = r.xrange(f"{stream}:dead")
    assert len(dead) == 2 and any(b"teleport" in d[1][b"error"] or b"type" in d[1][b"error"] for d in dead)
    s = Settings.load()
    store = Store(s.store_url)
    have = {
        row["event_id"]
        for row in store.query(
            "SELECT event_id FROM events_in WHERE motion = 'b2c' AND event_id LIKE ?", (f"{stream}-%",)
        )
    }
    assert have == set(ids)  # every event, once (the table's key is the event id)
    online = open_store(s.online_store_url)
    ctx = orjson.loads(online.get_many([key("b2c", customers[0])])[0])
    mine = [e for e in ctx["events"]["event_id"] if e.startswith(stream)]
    assert len(mine) == len(set(mine)) == 8  # each applied once, none lost
    online.close()


def test_decay_rescoring_fires_score_drop_triggers(trained, redis_url, monkeypatch):
    monkeypatch.setenv(
        "LEADSCORE_WEBHOOK_URL", "http://127.0.0.1:9/unreachable"
    )  # only the outbox is checked
    store = Store(Settings.load().store_url)
    rows = store.query("SELECT entity_id FROM last_scores WHERE motion = 'b2c'")
    assert rows, "the consumer test leaves scored customers"
    week = 8 * 86_400
    store.execute(
        "UPDATE last_scores SET scored_at = scored_at - ?, score = score + 0.5 WHERE motion = 'b2c'", (week,)
    )
    body = store.query("SELECT entity_id, body FROM last_scores WHERE motion = 'b2c' LIMIT 1")[0]
    state = json.loads(body["body"]) | {"score": 0.99}
    store.execute(
        "UPDATE last_scores SET body = ? WHERE motion = 'b2c' AND entity_id = ?",
        (json.dumps(state), body["entity_id"]),
    )
    assert _cli("rescore", "b2c", "--older-than", "30d")["rescored"] == 0
    r = _cli("rescore", "b2c", "--older-than", "7d")
    assert r["stale"] == len(rows) and r["rescored"] >= len(rows) and r["notifications"] >= 1
    keys = [
        k["dedupe_key"]
        for k in store.query("SELECT dedupe_key FROM outbox WHERE dedupe_key LIKE 'b2c:%:at_risk:%'")
    ]
    assert f"b2c:{body['entity_id']}:at_risk" in {k.rsplit(":", 1)[0] for k in keys}
    logged = [x for x in score_rows.read(store, "b2c") if x["source"] == "decay"]
    assert len(logged) >= r["rescored"]  # journaled, and shipped when the command closed its journal
