"""Real-time events on the running service, with a local webhook receiver: idempotent intake, re-scores in the
score log, a tier-up pushed with a valid signature, retries while the receiver is down and one delivery once it
is back, an unknown customer's events applied when a /score brings it, and the key check."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app
from features.historical import latest_time
from features.materialize import materialize
from features.online_store import open_store
from features.prepare import prepare
from leadscore import score_rows
from leadscore.config import load_config
from leadscore.schema import load_dataset
from leadscore.store import Store
from serving.webhooks import verify

pytestmark = pytest.mark.slow
SECRET = "whsec-test"


class Receiver:
    """A webhook receiver on a fixed port that can go down (its socket closed) and come back."""

    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.got: list[tuple[dict, bytes, float]] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                got.append((dict(self.headers), body, time.time()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def bodies(self, entity: str) -> list[dict]:
        return [json.loads(b) for _, b, _ in self.got if json.loads(b)["entity_id"] == entity]


def _key(*args: str) -> str:
    r = CliRunner().invoke(app, ["keys", "create", *args])
    assert r.exit_code == 0, r.output
    return r.output.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def setup(trained, b2c_dir, start_service, tmp_path_factory):
    home = tmp_path_factory.mktemp("events-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("LEADSCORE_HOME", str(home))
    store = open_store(f"sqlite:///{home}/online.db")
    p = prepare("b2c", load_dataset(b2c_dir, "b2c"))
    materialize(p, latest_time(p), load_config("b2c"), store)
    store.close()
    keys = {
        "events": _key("--name", "stream", "--scope", "events"),
        "score": _key("--name", "crm", "--scope", "score"),
    }
    mp.undo()
    receiver = Receiver()
    receiver.up()
    env = {"LEADSCORE_HOME": str(home), "LEADSCORE_WEBHOOK_URL": receiver.url, "LEADSCORE_WEBHOOK_SECRET": SECRET,
           "LEADSCORE_WEBHOOK_MAX_ATTEMPTS": "30"}  # fmt: skip
    service = start_service(env)
    customers = pd.read_parquet(b2c_dir / "customers.parquet")
    consenting = customers[customers["consent_email"]]["customer_id"].tolist()
    yield service, receiver, keys, home, consenting
    receiver.down()


def _post(service, path: str, body, key: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(service.url + path, json=body, headers=headers, timeout=60)


def _cart(customer: str, eid: str, price: float, minutes_ago: float = 90) -> dict:
    return {"event_id": eid, "ts": time.time() - 60 * minutes_ago, "type": "add_to_cart", "customer_id": customer,
            "session_id": f"s-{eid}", "product_id": "p1", "category": "electronics", "price": price, "quantity": 1}  # fmt: skip


def _db(home: Path, sql: str, args=()) -> list[tuple]:
    with sqlite3.connect(home / "leadscore.db") as con:
        return con.execute(sql, args).fetchall()


def _rescores(home: Path, entity: str) -> list[dict]:
    """The entity's re-scores (source ``event``) in the score log, in the order scored."""
    store = Store(f"sqlite:///{home / 'leadscore.db'}")
    try:
        return [
            r for r in score_rows.read(store, "b2c") if r["entity_id"] == entity and r["source"] == "event"
        ]
    finally:
        store.close()


def _wait(predicate, seconds: float = 20.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if v := predicate():
            return v
        time.sleep(0.1)
    return predicate()


def test_a_key_without_the_events_scope_is_refused(setup):
    service, _, keys, _, customers = setup
    body = {"motion": "b2c", "events": [_cart(customers[0], "auth-1", 10)]}
    assert _post(service, "/events", body, None).status_code == 401
    assert _post(service, "/events", body, "lsk_wrong").status_code == 401
    r = _post(service, "/events", body, keys["score"])
    assert r.status_code == 403 and "events" in r.json()["error"]


def test_bad_events_are_a_400_naming_the_field(setup):
    service, _, keys, _, customers = setup
    bad = [
        {
            "motion": "b2c",
            "events": [{"event_id": "x", "ts": time.time(), "type": "teleport", "customer_id": "c"}],
        },
        {
            "motion": "b2c",
            "events": [{"event_id": "x", "ts": time.time(), "type": "page_view"}],
        },  # no customer
        {"motion": "b2c", "events": []},
        {"motion": "nope", "events": [_cart(customers[0], "x", 1)]},
    ]
    for body in bad:
        r = _post(service, "/events", body, keys["events"])
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]
    r = _post(service, "/events", bad[1], keys["events"])
    assert (
        r.json()["error"] == "events.0.customer_id: must not be empty (got missing)"
    )  # one line, the event's index
    other = [_cart(customers[0], "ok-1", 1), {"event_id": "b2b-1", "ts": time.time(), "type": "pricing_page", "session_id": "s",
                                               "customer_id": customers[0]}]  # fmt: skip
    r = _post(service, "/events", {"motion": "b2c", "events": other}, keys["events"])
    assert r.status_code == 400 and r.json()["error"].startswith("events.1.type: value not in [")
    assert "\n" not in r.json()["error"] and "(got 'pricing_page')" in r.json()["error"]


def test_a_repeated_event_counts_once_and_a_tier_up_arrives_signed(setup):
    service, receiver, keys, home, customers = setup
    c = customers[1]
    first = {"motion": "b2c", "events": [_cart(c, f"{c}-small", 5)]}
    r = _post(service, "/events", first, keys["events"])
    assert r.status_code == 200, r.text
    a = r.json()
    assert (a["received"], a["new"], a["duplicates"], a["pending"], a["rescored"]) == (1, 1, 0, 0, 1)
    again = _post(service, "/events", first, keys["events"]).json()
    assert (again["new"], again["duplicates"], again["rescored"]) == (0, 1, 0)
    assert _db(home, "SELECT COUNT(*) FROM events_in WHERE event_id = ?", (f"{c}-small",))[0][0] == 1
    old_tier = _db(home, "SELECT tier FROM last_scores WHERE entity_id = ?", (c,))[0][0]
    assert old_tier != "high"
    # a cart worth 20,000 left 90 minutes ago: expected value puts the customer in the top tier
    big = _post(
        service, "/events", {"motion": "b2c", "events": [_cart(c, f"{c}-big", 20_000)]}, keys["events"]
    )
    assert big.status_code == 200 and big.json()["notifications"] >= 1, big.text
    sent = time.time()
    got = _wait(lambda: [b for b in receiver.bodies(c) if b["trigger"] == "tier_up"])
    assert got, f"no tier_up webhook for {c}: {receiver.got[-3:]}"
    headers, raw, at = next((h, b, t) for h, b, t in receiver.got if json.loads(b) == got[0])
    assert verify(SECRET, headers["X-Leadscore-Signature"], raw)
    assert not verify("another-secret", headers["X-Leadscore-Signature"], raw)
    assert at - sent < 5
    n = got[0]
    assert n["tier"] == {"old": old_tier, "new": "high"} and n["score"]["old"] is not None
    assert n["entity_id"] == c and n["sla_deadline"] is None or n["sla_deadline"] > n["at"]
    assert n["trend"] and {"feature", "was", "now", "change"} <= set(n["trend"][0])
    # the reasons worded as /score words them (the latest score keeps them unworded, as [feature, value, change])
    assert n["reasons"] and all(set(r) == {"feature", "group", "value", "direction", "contribution", "text"}
                                and r["text"] for r in n["reasons"])  # fmt: skip
    assert all(isinstance(t["text"], str) and t["text"] for t in n["trend"])
    kept = json.loads(_db(home, "SELECT body FROM last_scores WHERE entity_id = ?", (c,))[0][0])["reasons"]
    assert [r[0] for r in kept] == [r["feature"] for r in n["reasons"]]
    assert headers["X-Leadscore-Delivery"] == n["id"]
    # the score log has the re-scores (source 'event') and /score answers from the updated state
    assert _wait(lambda: len(_rescores(home, c)) >= 2)
    customer = {"customer_id": c, "created_at": "2020-01-01T00:00:00Z", "consent_email": True}
    s = _post(service, "/score", {"request": {"motion": "b2c", "customer": customer}}, keys["score"]).json()
    assert s.get("tier") == "high" and s["route"] == "human_concierge", s
    assert len(receiver.bodies(c)) == len({(b["trigger"]) for b in receiver.bodies(c)})  # none twice


def test_while_the_receiver_is_down_it_retries_and_delivers_once_when_back(setup):
    service, receiver, keys, home, customers = setup
    c = customers[2]
    receiver.down()
    try:
        r = _post(
            service, "/events", {"motion": "b2c", "events": [_cart(c, f"{c}-big", 30_000)]}, keys["events"]
        )
        assert r.status_code == 200 and r.json()["notifications"] >= 1
        tried = _wait(
            lambda: (
                _db(home, "SELECT MAX(attempts) FROM outbox WHERE dedupe_key LIKE ?", (f"b2c:{c}:%",))[0][0]
                or 0 >= 2
            )
        )
        assert tried, "the dispatcher did not retry"
        assert not receiver.bodies(c)
    finally:
        receiver.up()
    got = _wait(lambda: receiver.bodies(c), 40)
    assert got, _db(
        home, "SELECT state, attempts, last_error FROM outbox WHERE dedupe_key LIKE ?", (f"b2c:{c}:%",)
    )
    time.sleep(3)
    keys_seen = [b["id"] for b in receiver.bodies(c)]
    assert len(keys_seen) == len(set(keys_seen))  # each notification once
    states = _db(home, "SELECT state FROM outbox WHERE dedupe_key LIKE ?", (f"b2c:{c}:%",))
    assert {s for (s,) in states} == {"sent"}


def test_events_of_an_unknown_customer_wait_and_are_applied_when_a_score_brings_it(setup):
    service, _, keys, home, _ = setup
    c = f"new-{int(time.time())}"
    r = _post(service, "/events", {"motion": "b2c", "events": [_cart(c, f"{c}-1", 700), _cart(c, f"{c}-2", 300)]},
              keys["events"]).json()  # fmt: skip
    assert (r["new"], r["pending"], r["rescored"]) == (2, 2, 0)
    assert {s for (s,) in _db(home, "SELECT state FROM events_in WHERE entity_id = ?", (c,))} == {"pending"}
    customer = {"customer_id": c, "created_at": time.time() - 86_400, "consent_email": True}
    first = _post(
        service, "/score", {"request": {"motion": "b2c", "customer": customer}}, keys["score"]
    ).json()
    applied = _wait(
        lambda: (
            {s for (s,) in _db(home, "SELECT state FROM events_in WHERE entity_id = ?", (c,))} == {"applied"}
        )
    )
    assert applied, "the pending events were not applied after /score brought the customer"
    second = _post(
        service, "/score", {"request": {"motion": "b2c", "customer": customer}}, keys["score"]
    ).json()
    assert second["expected_value"] > first["expected_value"]  # the cart (1,000) counts now
    rows = _wait(lambda: _rescores(home, c))
    assert rows and rows[-1]["features"]["cart_value"] == 1000


def test_a_worker_with_bodies_waiting_gives_the_connection_back(setup):
    """Bodies answered while others wait on the worker's events thread carry ``Connection: close``, so a caller's
    next body is accepted by whichever worker is free (keep-alive callers that connect at once otherwise stay on
    the worker that accepted them); a body answered with nothing waiting keeps its connection."""
    from concurrent.futures import ThreadPoolExecutor

    service, _, keys, _, customers = setup
    who = customers[200:400]
    run = f"hb-{time.time_ns()}"

    def body(k: int) -> dict:
        events = [{"event_id": f"{run}-{k}-{i}-{j}", "ts": time.time() - 60, "type": "product_view",
                   "customer_id": c, "session_id": f"{run}-{k}-{i}", "category": "books", "price": 12.0}
                  for i, c in enumerate(who) for j in range(3)]  # fmt: skip
        return {"motion": "b2c", "events": events}

    # encoded beforehand and sent together behind a barrier: they arrive within a fraction of the time one takes
    # to take in, so bodies wait behind others however fast the machine is
    raws = [json.dumps(body(k)).encode() for k in range(4)]
    start = threading.Barrier(len(raws))

    def post(raw: bytes) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            start.wait()
            return client.post(service.url + "/events", content=raw, headers={
                "authorization": f"Bearer {keys['events']}", "content-type": "application/json"})  # fmt: skip

    with ThreadPoolExecutor(len(raws)) as pool:
        answers = list(pool.map(post, raws))
    assert all(a.status_code == 200 and a.json()["new"] == 600 for a in answers), [a.text for a in answers]
    closed = [a.headers.get("connection") == "close" for a in answers]
    assert 1 <= sum(closed) <= 3, closed  # the last one answered had nothing waiting behind it
    with httpx.Client(timeout=60) as client:
        alone = client.post(
            service.url + "/events", json=body(9), headers={"authorization": f"Bearer {keys['events']}"}
        )
        assert alone.status_code == 200 and alone.headers.get("connection") != "close"
        again = client.post(
            service.url + "/events", json=body(9), headers={"authorization": f"Bearer {keys['events']}"}
        )
        assert again.json()["duplicates"] == 600  # the same body again: every event a duplicate


def _nice(pid: int, tid: int | str) -> int:
    """A thread's nice value (field 19 of its stat line; the command name before it may hold spaces)."""
    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="threads' nice values are read from /proc")
def test_each_worker_takes_events_in_on_one_thread_below_its_others(setup):
    """LEADSCORE_EVENTS_NICE (default 5): /score requests get the cores before events when both are busy."""
    pids = setup[0].workers()
    assert pids
    for pid in pids:
        values = [_nice(pid, tid.name) for tid in Path(f"/proc/{pid}/task").iterdir()]
        base = _nice(pid, pid)  # the worker's main thread: its event loop
        assert values.count(min(19, base + 5)) == 1, values
        assert all(v == base for v in values if v != min(19, base + 5)), values
