"""Batch scoring against its floor, in the same run: ``leadscore score`` on generated B2B leads (about 20 events
each) end to end — features, model, reasons, routes, the output file and the score log — beside the floor: the
same features and a bare booster predict on the same leads, nothing else. Each runs in a process of its own, so
its peak memory is its own.

``python -m bench.batch`` prints JSON (``BENCH_BATCH_LEADS``, default 200,000; ``BENCH_BATCH_EVENTS_PER_LEAD``,
default 20: at 1,000,000 and 60 — about 50M events — ``leadscore score`` goes a partition at a time, past
``LEADSCORE_MAX_EVENTS_IN_MEMORY``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LEADS = int(os.environ.get("BENCH_BATCH_LEADS", "200000"))
EVENTS_PER_LEAD = float(os.environ.get("BENCH_BATCH_EVENTS_PER_LEAD", "20"))
REPEATS = int(os.environ.get("BENCH_BATCH_REPEATS", "2"))  # floor and score interleaved this many times


def _floor(data: str) -> dict:
    from features.historical import features_as_of, latest_time
    from features.prepare import prepare
    from leadscore.config import load_config
    from leadscore.schema import load_dataset
    from model.registry import load

    model, _ = load("b2b@champion")
    t0 = time.perf_counter()
    p = prepare("b2b", load_dataset(data, "b2b"))
    frame = features_as_of(p, latest_time(p), load_config("b2b"))
    model.booster.predict(model.preprocessor.transform(frame))
    return {"seconds": time.perf_counter() - t0, "leads": len(frame)}


def _score(data: str, out: str) -> dict:
    from serving.file_scoring import score_file

    t0 = time.perf_counter()
    r = score_file("b2b@champion", data, out)
    return {
        "seconds": time.perf_counter() - t0,
        "leads": r.attrs["rows"],
        "partitions": r.attrs.get("partitions", 0),
    }


def child(kind: str, data: str, out: str) -> None:
    r = _floor(data) if kind == "floor" else _score(data, out)
    r["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print("RESULT" + json.dumps(r))


def main() -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="leadscore-bench-batch-"))
    env = os.environ | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "LEADSCORE_HOME": str(tmp / "home"),
    }
    os.environ.update(env)
    from synthetic import generate
    from training.pipelines import train_motion

    generate("b2b", 8000, 5, tmp / "train")
    train_motion("b2b", tmp / "train")
    t0 = time.perf_counter()
    generate("b2b", LEADS, 9, tmp / "big", scale=EVENTS_PER_LEAD)
    generated = time.perf_counter() - t0
    import pyarrow.parquet as pq

    events = pq.ParquetFile(tmp / "big" / "events.parquet").metadata.num_rows

    def run(kind: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "bench.batch", "--child", kind, str(tmp / "big"),
                              str(tmp / "scores.parquet")], env=env, capture_output=True, text=True)  # fmt: skip
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        return json.loads(out.stdout.split("RESULT", 1)[1])

    floors, scores = [], []
    for _ in range(REPEATS):  # interleaved: the machine's speed drifts
        floors.append(run("floor"))
        scores.append(run("score"))
    floor, scored = floors[0], scores[0]
    f = min(r["seconds"] for r in floors)
    s = min(r["seconds"] for r in scores)
    return {
        "leads": scored["leads"],
        "events": events,
        "generator seconds (synthetic data, not scored)": round(generated, 1),
        "floor leads/s": round(floor["leads"] / f),
        "leadscore score leads/s": round(scored["leads"] / s),
        "ratio vs floor": round(f / s, 3),
        "floor peak RSS GB": max(r["peak_rss_gb"] for r in floors),
        "leadscore score peak RSS GB": max(r["peak_rss_gb"] for r in scores),
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        print(json.dumps(main(), indent=2))
