"""Real-time events on 2 workers, 127.0.0.1: events taken in per second through ``POST /events`` (batches of
1,000: one event per customer, five, and twenty per customer, as a session's burst), event → webhook latency (an event
that makes a trigger, sent while the load runs, to its signed webhook at a local receiver), and ``/score`` p99 at
the knee alone and while events flow, in the same run. Every event rewrites its customer's stored context, so the
cost of an event grows with the events the context holds (and with the stores, whose commits slow as they grow):
the bench reports the mean at the start and at the end, and takes one event per customer in again at the end,
from the grown contexts and stores. Each intake reports the cores each worker used during it
(``worker_cores``): both busy is the service spreading the bench's four keep-alive clients over its workers; and
the workers' CPU time per event (``worker_cpu_us_per_event``), beside the same for a ``/score`` request alone:
their ratio is an event's cost in ``/score`` requests, a yardstick measured in the same run (a request's own cost
moves with how full its micro-batches are, so the ratio moves too: 0.18-0.26 in eight runs).

``python -m bench.events`` prints JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np

from bench.serving import KNEE, free_port, start, stop, wait, workers, wrk
from serving import serve_command

SECONDS = float(os.environ.get("BENCH_EVENTS_SECONDS", "10"))
CLIENTS = 4  # two per worker


def _receiver(arrivals: dict[str, float], bodies: list[dict]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            arrivals.setdefault(body["entity_id"], time.time())
            if len(bodies) < 20:
                bodies.append(body | {"_signature": self.headers.get("X-Leadscore-Signature", "")})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _events(customers: list[str], per_customer: int, start_id: str, now: float) -> list[dict]:
    out = []
    for i, c in enumerate(customers):
        for j in range(per_customer):
            out.append({"event_id": f"b{start_id}-{i}-{j}", "ts": now - 30 + j, "type": "product_view",
                        "customer_id": c, "session_id": f"s{start_id}-{i}", "category": "books", "price": 12.0})  # fmt: skip
    return out


def intake(url: str, customers: list[str], per_customer: int, seconds: float) -> dict:
    """Clients posting 1,000-event bodies back to back; events per second over all of them. Every event is new
    (ids unique across calls of this function too: a duplicate costs the service a lookup, not an event)."""
    per_call = 1000 // per_customer
    run = uuid.uuid4().hex[:8]

    def client(k: int) -> tuple[int, int]:
        n, new, call, t_end = 0, 0, 0, time.perf_counter() + seconds
        rng = np.random.default_rng(k)
        with httpx.Client(timeout=120) as c:
            while time.perf_counter() < t_end:
                who = [customers[i] for i in rng.choice(len(customers), per_call, replace=False)]
                body = {
                    "motion": "b2c",
                    "events": _events(who, per_customer, f"{run}-{k}-{call}", time.time()),
                }
                answer = c.post(url, json=body).raise_for_status().json()
                n, new = n + len(body["events"]), new + answer["new"]
                call += 1
        return n, new

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        done = list(pool.map(client, range(CLIENTS)))
    n, new = sum(d[0] for d in done), sum(d[1] for d in done)
    assert new == n, f"{n - new} of {n} events were taken as duplicates: the load must send new events only"
    return {"events": n, "events_per_s": round(n / (time.perf_counter() - t0))}


def worker_cores(proc, run, per: str = "events"):
    """``run()``'s result with the cores each service worker used meanwhile (the workers share one listening
    socket, so both being busy is not a given: ``serving.responses.respond``), and the workers' CPU time (user and
    system) per item of ``run()``'s count ``per``: what an event costs, whatever the load's shape and however many
    cores were free. The machine's speed still shows in it; the bench's ``/score`` request, measured the same way
    in the same run, is its yardstick."""
    procs = workers(proc)
    before = [sum(w.cpu_times()[:2]) for w in procs]
    t0 = time.perf_counter()
    out = run()
    took = time.perf_counter() - t0
    used = [sum(w.cpu_times()[:2]) - b for w, b in zip(procs, before, strict=True)]
    return out | {
        "worker_cores": [round(u / took, 2) for u in used],
        f"worker_cpu_us_per_{per.rstrip('s')}": round(1e6 * sum(used) / max(out[per], 1), 1),
    }


def probes(url: str, customers: list[str], arrivals: dict[str, float], seconds: float) -> list[float]:
    """One trigger-making event (an abandoned cart worth 500) every 50 ms, each for a customer of its own;
    the seconds from sending it to its webhook's arrival."""
    sent: dict[str, float] = {}
    t_end = time.time() + seconds
    with httpx.Client(timeout=60) as c:
        for cust in customers:
            if time.time() > t_end:
                break
            e = {"event_id": f"probe-{cust}", "ts": time.time() - 3600, "type": "add_to_cart", "customer_id": cust,
                 "session_id": f"p-{cust}", "category": "electronics", "price": 500.0, "quantity": 1}  # fmt: skip
            sent[cust] = time.time()
            c.post(url, json={"motion": "b2c", "events": [e]}).raise_for_status()
            time.sleep(0.05)
    time.sleep(3)
    return [arrivals[k] - t for k, t in sent.items() if k in arrivals]


def _answered(w: dict) -> dict:
    """wrk's figures for ``/score``, with the requests that failed (no answer, or not a 2xx) counted beside them:
    a failed request is quick, so a run with failures would show a rate and a latency the service never gave."""
    return {k: round(w[k], 1) for k in ("rps", "p50_ms", "p99_ms")} | {"failed": w["errors"] + w["non2xx"]}


def stored_events(online, customers: list[str], sample: int = 500) -> float:
    """The mean number of events a customer's stored context holds (over ``sample`` customers): what every event
    for that customer reads, re-scores from and writes back."""
    from features.online_store import key

    raws = online.get_many([key("b2c", c) for c in customers[:sample]])
    return round(float(np.mean([len(json.loads(r)["events"]["ts"]) for r in raws if r])), 1)


def main() -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="leadscore-bench-events-"))
    env = os.environ | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "LEADSCORE_HOME": str(tmp / "home"),
        "BENTOML_CONFIG_OVERRIDES": json.dumps({"services": {"leadscore": {"workers": 2}}}),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_URI", "LEADSCORE_HOME")})
    import pandas as pd

    from features.historical import latest_time
    from features.materialize import materialize
    from features.online_store import open_store
    from features.prepare import prepare
    from leadscore.config import load_config
    from leadscore.schema import load_dataset
    from leadscore.settings import Settings
    from synthetic import generate
    from training.pipelines import train_motion

    generate("b2c", 20_000, 5, tmp / "b2c")
    train_motion("b2c", tmp / "b2c")
    p = prepare("b2c", load_dataset(tmp / "b2c", "b2c"))
    settings = Settings.load()
    settings.ensure_home()
    online = open_store(settings.online_store_url)
    materialize(p, latest_time(p), load_config("b2c"), online)
    customers = pd.read_parquet(tmp / "b2c" / "customers.parquet")
    consenting = customers[customers["consent_email"]]["customer_id"].tolist()
    load_set, probe_set = consenting[: len(consenting) // 2], consenting[len(consenting) // 2 :]
    arrivals: dict[str, float] = {}
    bodies: list[dict] = []
    receiver = _receiver(arrivals, bodies)
    port = free_port()
    env |= {"LEADSCORE_WEBHOOK_URL": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
            "LEADSCORE_WEBHOOK_SECRET": "bench"}  # fmt: skip
    proc = start(serve_command("127.0.0.1", port), env, tmp / "bentoml.log")
    base = f"http://127.0.0.1:{port}"
    results: dict = {}
    try:
        wait(f"{base}/readyz", proc)
        example = {"request": {"motion": "b2c", "customer": {"customer_id": load_set[0], "created_at": "2024-01-01T00:00:00Z",
                                                               "consent_email": True}}}  # fmt: skip
        results["stored events per customer, at the start"] = stored_events(online, load_set)
        wrk(f"{base}/score", json.dumps(example), tmp, 3, conns=KNEE)  # warm-up, outside the CPU measured
        alone = worker_cores(
            proc,
            lambda: wrk(f"{base}/score", json.dumps(example), tmp, int(SECONDS), conns=KNEE, warm=False),
            "requests",
        )
        results["score alone"] = _answered(alone) | {
            "worker_cpu_us_per_request": alone["worker_cpu_us_per_request"]
        }
        for per in (1, 5, 20):
            results[f"intake, {per} per customer"] = worker_cores(
                proc, lambda per=per: intake(f"{base}/events", load_set, per, SECONDS)
            )
        # events and /score at once, and the probes while both run
        with ThreadPoolExecutor(2) as pool:
            flow = pool.submit(intake, f"{base}/events", load_set, 5, SECONDS + 6)
            lat = pool.submit(probes, f"{base}/events", probe_set, arrivals, SECONDS)
            time.sleep(1)
            mixed = wrk(f"{base}/score", json.dumps(example), tmp, int(SECONDS), conns=KNEE)
            results["intake while /score runs, 5 per customer"] = flow.result()
            waits = lat.result()
        results["score while events flow"] = _answered(mixed)
        results["score p99 ratio, events flowing vs alone"] = round(mixed["p99_ms"] / alone["p99_ms"], 2)
        results["event to webhook"] = {
            "probes": len(waits),
            "p50_ms": round(1000 * statistics.median(waits), 1) if waits else None,
            "p99_ms": round(1000 * float(np.quantile(waits, 0.99)), 1) if waits else None,
        }
        # the contexts have grown by the events above: 1 per customer again, and how large they are now
        results["stored events per customer, now"] = stored_events(online, load_set)
        results["intake, 1 per customer, larger contexts"] = worker_cores(
            proc, lambda: intake(f"{base}/events", load_set, 1, SECONDS)
        )
        # an event's cost in /score requests, both measured as worker CPU in this run
        results["one event, 1 per customer, in /score requests of worker CPU"] = round(
            results["intake, 1 per customer"]["worker_cpu_us_per_event"] / alone["worker_cpu_us_per_request"],
            2,
        )
        results["example notification"] = next((b for b in bodies if b["trigger"] == "cart_abandoned"), None)
    finally:
        stop(proc)
        receiver.shutdown()
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
