"""Durable before acknowledged, against the real running service: every score it answered with a 200 reaches the
score log — after a kill -9 of its worker under load, and across a PostgreSQL restart under load."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from leadscore.store import Store

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "serving" / "examples"


def _example(motion: str) -> dict:
    return json.loads((EXAMPLES / f"{motion}.json").read_text())


class Load:
    """``clients`` threads posting /score with unique request ids until stopped; keeps the acknowledged ids."""

    def __init__(self, url: str, tag: str, clients: int):
        self.url, self.tag, self.acked, self.failed = url, tag, [], 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(clients)
        self._futures = [self._pool.submit(self._client, k) for k in range(clients)]

    def _client(self, k: int) -> None:
        with httpx.Client(timeout=15) as http:
            i = 0
            while not self._stop.is_set():
                body = _example(("b2b", "b2c", "hybrid")[i % 3])
                rid = body["request"]["request_id"] = f"{self.tag}-{k}-{i}"
                i += 1
                try:
                    ok = http.post(f"{self.url}/score", json=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with self._lock:
                    if ok:
                        self.acked.append(rid)
                    else:
                        self.failed += 1
                        time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for f in self._futures:
            f.result()
        self._pool.shutdown()


def _logged(store: Store, tag: str) -> set[str]:
    return {
        r["request_id"]
        for r in store.query("SELECT request_id FROM score_log WHERE request_id LIKE ?", (f"{tag}-%",))
    }


def _until_logged(store: Store, tag: str, acked: list[str], seconds: float = 60) -> set[str]:
    deadline, logged = time.time() + seconds, set()
    while time.time() < deadline:
        try:
            logged = _logged(store, tag)
        except Exception:  # the store itself may still be coming back
            logged = set()
        if set(acked) <= logged:
            break
        time.sleep(0.5)
    return logged


def test_a_killed_worker_loses_no_acknowledged_score(trained, start_service, tmp_path):
    home = tmp_path / "home"
    service = start_service(
        {"LEADSCORE_HOME": str(home), "LEADSCORE_STORE_URL": f"sqlite:///{tmp_path}/log.db"}
    )
    load = Load(service.url, f"kill-{time.time_ns()}", clients=16)
    time.sleep(4)
    workers = service.workers()
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)
    time.sleep(3)
    service.wait_ready()
    time.sleep(2)
    load.stop()
    assert len(load.acked) > 200
    store = Store(f"sqlite:///{tmp_path}/log.db")
    logged = _until_logged(store, load.tag, load.acked)
    missing = set(load.acked) - logged
    print(f"kill -9: {len(load.acked)} acknowledged, {len(set(load.acked) & logged)} in the score log, "
          f"{load.failed} requests failed while the worker was replaced")  # fmt: skip
    assert not missing, f"{len(missing)} of {len(load.acked)} acknowledged scores are not in the score log"
    assert set(service.workers()) - set(workers), "the killed worker was not replaced"


def _restart_postgres() -> None:
    versions = os.listdir("/etc/postgresql")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.services
def test_a_postgres_restart_loses_no_acknowledged_score(trained, start_service, pg_schema_url, tmp_path):
    if shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        pytest.skip("PostgreSQL is not managed by pg_ctlcluster on this machine")
    service = start_service(
        {
            "LEADSCORE_HOME": str(tmp_path / "home"),
            "LEADSCORE_STORE_URL": pg_schema_url,
            "LEADSCORE_ONLINE_STORE_URL": pg_schema_url,
        }
    )
    load = Load(service.url, f"pg-{time.time_ns()}", clients=8)
    time.sleep(4)
    before = len(load.acked)
    _restart_postgres()
    time.sleep(4)
    load.stop()
    after_restart = len(load.acked) - before
    assert after_restart > 100, "scoring did not go on while the store restarted"
    assert load.failed == 0, f"{load.failed} requests failed while PostgreSQL restarted"
    store = Store(pg_schema_url)
    logged = _until_logged(store, load.tag, load.acked)
    missing = set(load.acked) - logged
    print(f"PostgreSQL restart: {len(load.acked)} acknowledged ({after_restart} after the restart began), "
          f"{len(set(load.acked) & logged)} in the score log, {load.failed} failed")  # fmt: skip
    assert not missing, f"{len(missing)} of {len(load.acked)} acknowledged scores are not in the score log"
    status = httpx.post(f"{service.url}/admin/status", json={}, timeout=10).json()
    assert status["store_ok"] and status["journal_unshipped_bytes"] == 0
    metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
    assert (
        'leadscore_degraded_total{dependency="online_store"' in metrics
    )  # scored from the request meanwhile
    body = _example("b2b")
    assert (
        httpx.post(f"{service.url}/score", json=body, timeout=10).json()["degraded"] == []
    )  # back to normal
    store.close()


def test_sigterm_with_the_store_down_stops_in_bounded_time_and_keeps_the_rows(
    trained, start_service, tmp_path
):
    from leadscore import keys

    home = tmp_path / "home"
    keys.save_copy([], home / "api-keys.json")  # a service that ran before and saw no keys
    service = start_service({"LEADSCORE_HOME": str(home),
                             "LEADSCORE_STORE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"})  # fmt: skip
    body = _example("b2c")
    for i in range(20):
        body["request"]["request_id"] = f"down-{i}"
        r = httpx.post(f"{service.url}/score", json=body, timeout=30)
        assert r.status_code == 200, r.text  # scoring goes on with the store down
    deadline = time.time() + 20  # the shipper reports the store down once its write has failed
    while (ready := httpx.get(f"{service.url}/readyz", timeout=10)).json()["store_ok"]:
        assert time.time() < deadline, ready.text
        time.sleep(0.5)
    status = ready.json()  # still ready (scoring goes on), and /readyz says why rows wait
    assert ready.status_code == 200 and status["ready"] and status["journal"] == "on"
    assert 0 < status["journal_unshipped_bytes"] < status["journal_cap_bytes"] and status["store_errors"] >= 1
    t = time.time()
    service.proc.send_signal(signal.SIGTERM)
    service.proc.wait(30)
    assert time.time() - t < 15, "SIGTERM took too long with the store down"
    journal = b"".join(p.read_bytes() for p in (home / "journal").glob("*.jsonl"))
    assert {json.loads(line)[0] for line in journal.splitlines()} >= {f"down-{i}" for i in range(20)}
