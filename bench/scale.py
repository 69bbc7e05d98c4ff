"""Scaling on a distributed.LocalCluster on this machine: point-in-time B2B features partitioned by account,
1 worker against 2 on the same data (strong scaling) and the data doubled with the workers (weak scaling),
each worker's peak memory, and the per-event costs docs/scale.md plans from.

``python -m bench.scale`` prints JSON (``BENCH_SCALE_LEADS``, default 100,000 leads at about 20 events each).
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

LEADS = int(os.environ.get("BENCH_SCALE_LEADS", "100000"))


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(data: Path, workers: int, work: Path) -> dict:
    import functools

    from distributed import Client, LocalCluster

    from features.partitioned import features_at, partition, per_partition
    from leadscore.config import load_config

    conf = load_config("b2b")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit="6GiB",
                      dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
        t0 = time.perf_counter()
        layout = partition(data, "b2b", work, 4 * workers)
        t1 = time.perf_counter()
        rows = per_partition(layout, functools.partial(_count, layout, features_at, conf)).compute()
        t2 = time.perf_counter()
        rss = client.run(_peak_rss_gb)
    events = len(pd.read_parquet(data / "events.parquet", columns=["event_id"]))
    return {
        "workers": workers,
        "leads": int(rows["leads"].sum()),
        "events": events,
        "partition_s": round(t1 - t0, 2),
        "features_s": round(t2 - t1, 2),
        "total_s": round(t2 - t0, 2),
        "events_per_s": round(events / (t2 - t0)),
        "peak_rss_gb_per_worker": round(max(rss.values()), 2),
    }


def _count(layout, features_at, conf, k: int) -> pd.DataFrame:
    f = features_at(layout, k, layout.ts_max, conf)
    return pd.DataFrame({"partition": [k], "leads": [len(f)]})


def main() -> dict:
    from synthetic import generate

    tmp = Path(tempfile.mkdtemp(prefix="leadscore-bench-scale-"))
    generate("b2b", LEADS, 3, tmp / "n")
    generate("b2b", 2 * LEADS, 4, tmp / "2n")
    one = run(tmp / "n", 1, tmp / "w1")
    two = run(tmp / "n", 2, tmp / "w2")
    weak = run(tmp / "2n", 2, tmp / "w3")
    return {
        "runs": [one, two, weak],
        "strong scaling (same data, 2 workers vs 1)": round(one["total_s"] / two["total_s"], 2),
        "weak scaling efficiency (2x data on 2 workers vs 1x on 1)": round(
            one["total_s"] / weak["total_s"], 2
        ),
        "worker GB per million events": round(weak["peak_rss_gb_per_worker"] / (weak["events"] / 2 / 1e6), 3),
        "seconds per million events per worker": round(weak["total_s"] / (weak["events"] / 2 / 1e6), 2),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
