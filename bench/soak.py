"""Soak: the service at the serving bench's knee (wrk, 16 connections: full throughput, no queueing tail) for ``BENCH_SOAK_SECONDS`` (default
300), every request with its own request id. Afterwards every acknowledged score must be in the score log, and
the workers' memory must not drift: RSS is sampled every 10 seconds from the first minute on.

Run in its own process: ``python -m bench.soak``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.serving import ROOT, free_port, start, stop, wait, workers
from serving import serve_command

SECONDS = int(os.environ.get("BENCH_SOAK_SECONDS", "300"))
CONNECTIONS = int(os.environ.get("BENCH_SOAK_CONNECTIONS", "16"))  # the knee of the serving bench (see there)
LUA = """
local n = 0
local template = io.open(os.getenv("BODY_FILE")):read("*a")
function setup(thread)
  n = n + 1
  thread:set("tid", n)
end
request = function()
  n = n + 1
  local body = string.gsub(template, "__RID__", "soak-" .. (tid or 0) .. "-" .. n)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("JSON{\\"requests\\":%d,\\"errors\\":%d,\\"non2xx\\":%d,\\"p99_ms\\":%f}\\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(99) / 1000))
end
"""


def main() -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="leadscore-soak-"))
    env = os.environ | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "LEADSCORE_HOME": str(tmp / "home"),
        "BENTOML_CONFIG_OVERRIDES": json.dumps({"services": {"leadscore": {"workers": 2}}}),
    }
    os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_URI", "LEADSCORE_HOME")})
    from leadscore.settings import Settings
    from leadscore.store import Store
    from synthetic import generate
    from training.pipelines import train_motion

    generate("b2b", 8000, 5, tmp / "b2b")
    train_motion("b2b", tmp / "b2b")
    example = json.loads((ROOT / "serving/examples/b2b.json").read_text())
    example["request"]["request_id"] = "__RID__"
    (tmp / "body.json").write_text(json.dumps(example))
    (tmp / "soak.lua").write_text(LUA)
    port = free_port()
    proc = start(serve_command("127.0.0.1", port), env, tmp / "bentoml.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait(f"{url}/readyz", proc)
        time.sleep(3)
        procs = workers(proc)
        wrk = subprocess.Popen(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--timeout", "10s", "-s", str(tmp / "soak.lua"),
                                f"{url}/score"], env=env | {"BODY_FILE": str(tmp / "body.json")},
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
        samples: list[tuple[float, int]] = []
        t0 = time.time()
        while wrk.poll() is None:
            time.sleep(10)
            samples.append((time.time() - t0, sum(w.memory_info().rss for w in procs if w.is_running())))
        out = wrk.stdout.read() if wrk.stdout else ""
        summary = json.loads(out[out.index("JSON") + 4 :].splitlines()[0])
        acked = summary["requests"] - summary["non2xx"] - summary["errors"]
        store = Store(Settings.load().store_url)
        deadline, rows = time.time() + 120, 0
        while time.time() < deadline:
            rows = store.query("SELECT COUNT(*) AS n FROM score_log WHERE request_id LIKE 'soak-%'")[0]["n"]
            if rows >= acked:
                break
            time.sleep(1)
        status = httpx.post(f"{url}/admin/status", json={}, timeout=10).json()
    finally:
        stop(proc)
    steady = [rss for t, rss in samples if t >= 60] or [rss for _, rss in samples]
    first, last = statistics.median(steady[:3]), statistics.median(steady[-3:])
    return {"seconds": SECONDS, "connections": CONNECTIONS, "requests": summary["requests"], "acknowledged": acked, "score_log_rows": rows,
            "rows_minus_acknowledged": rows - acked, "errors": summary["errors"] + summary["non2xx"],
            "req_per_s": round(summary["requests"] / SECONDS), "p99_ms": round(summary["p99_ms"], 1),
            "rss_mb_after_1_min": round(first / 2**20), "rss_mb_at_end": round(last / 2**20),
            "rss_drift_mb": round((last - first) / 2**20, 1),
            "journal_unshipped_bytes_at_end": status.get("journal_unshipped_bytes")}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(main()))
    sys.stdout.flush()
