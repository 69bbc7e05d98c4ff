"""Batch scoring of canonical tables partitioned by entity: on a Dask cluster (``--scheduler``), or in this
process one partition at a time when the events are too many to hold (``LEADSCORE_MAX_EVENTS_IN_MEMORY``).
The same features, scores, reasons and routes as in memory (``serving.batch_parts``), a partition's memory."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from leadscore import motions
from leadscore.errors import UserError
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.times import epoch_seconds
from serving.batch_parts import Writer, chunk_log_batches, score_chunk, track_run
from serving.score_log import ScoreLog


def score_partitioned(step: Callable[[str], None], model: Any, name: str, version: str, conf: Any, data: Path,
                       out: Path, as_of: str | None, reasons: int, scheduler: str) -> pd.DataFrame:  # fmt: skip
    """A motion model's batch scoring on a Dask cluster: the tables partitioned by entity, each partition's
    features, scores, reasons and routes computed by one task (``map`` over partitions) and written as
    ``out/part-NNNNN.parquet``, its score-log rows journaled by the worker. Returns the partitions' counts (the
    scores stay in ``out``)."""
    from distributed import Client

    from features.partitioned import features_at, partition, partitions_for, per_partition

    settings = Settings.load()
    work = settings.dask_workdir or settings.home / "partitions"
    out.mkdir(parents=True, exist_ok=True)
    with Client(scheduler) as client:
        n = partitions_for(data, model.motion, len(client.scheduler_info()["workers"]))
        step(f"partitioning the tables by entity ({n} partitions)")
        layout = partition(data, model.motion, Path(work) / f"{model.motion}-{uuid.uuid4().hex[:8]}", n)
        t = epoch_seconds(as_of) if as_of else layout.ts_max
        step("features, scores, reasons and routes per partition")
        batch = f"batch-{uuid.uuid4().hex[:12]}"
        task = functools.partial(_one_partition, layout, features_at, model, name, version, conf, t, out, reasons,
                                 batch)  # fmt: skip
        counts = per_partition(layout, task).compute()
    result = counts.reset_index(drop=True)
    result.attrs |= {"missing_inputs": [], "rows": int(result["rows"].sum()), "partitions": n,
                     "tiers": _sum_counts(result["tiers"]), "routes": _sum_counts(result["routes"])}  # fmt: skip
    step("recording the batch run in MLflow")
    track_run(name, version, data, result, None)
    return result


def event_rows(data: Path) -> int:
    """The events table's row count from its Parquet metadata (0 for CSV: read whole, as before)."""
    import pyarrow.parquet as pq

    from leadscore.files import find_table_file

    path = find_table_file(data, "events")
    return pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else 0


def score_in_parts(step: Callable[[str], None], model: Any, name: str, version: str, conf: Any, data: Path,
                    out: Path, as_of: str | None, reasons: int, store: Store) -> pd.DataFrame:  # fmt: skip
    """A motion model's batch scoring in this process for tables too large to hold: partitioned by entity on
    disk (``features.partitioned``, Dask's local scheduler), then one partition at a time — features, scores,
    reasons, routes — appended to the one output file and the score log. Memory is a partition's."""
    import shutil

    import dask

    from features.partitioned import features_at, partition, partitions_for

    if out.suffix not in (".parquet", ".csv"):
        raise UserError(f"--out must end in .csv or .parquet, not {out.suffix!r}")
    settings = Settings.load()
    work = (settings.dask_workdir or settings.home / "partitions") / f"{model.motion}-{uuid.uuid4().hex[:8]}"
    n = partitions_for(data, model.motion, 1)
    step(f"partitioning the tables by entity ({n} partitions under {work})")
    with dask.config.set(scheduler="threads"):
        layout = partition(data, model.motion, work, n)
    t = epoch_seconds(as_of) if as_of else layout.ts_max
    out.parent.mkdir(parents=True, exist_ok=True)
    journal = ScoreLog(store, settings.home, max_mb=settings.journal_max_mb).start()
    batch = f"batch-{uuid.uuid4().hex[:12]}"
    id_name = motions.get(model.motion).id_column
    writer, counts, start = Writer(out), [], 0
    step("features, scores, reasons and routes, a partition at a time")
    try:
        for k in range(n):
            frame = features_at(layout, k, t, conf)
            if not len(frame):
                continue
            result, shown = score_chunk(model, conf, frame, frame[id_name].astype(str).to_numpy(), id_name, None,
                                        reasons)  # fmt: skip
            writer.write(result)
            journal.append_batches(chunk_log_batches(batch, start, frame["as_of"].dt.strftime("%Y-%m-%d %H:%M:%S")
                .to_numpy(dtype=object), model.motion, name, version, result, id_name, shown))  # fmt: skip
            journal.wait_below(journal.max_bytes // 4)
            counts.append(result[["tier", "route"]])
            start += len(result)
        writer.close()
    except BaseException:
        writer.abort()
        journal.close(timeout=5)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    step("shipping the score log")
    journal.close(timeout=60)
    done = pd.concat(counts, ignore_index=True) if counts else pd.DataFrame({"tier": [], "route": []})
    result = pd.DataFrame({"rows": [len(done)]})
    result.attrs |= {"missing_inputs": [], "rows": len(done), "partitions": n,
                     "tiers": done["tier"].value_counts().sort_index().to_dict(),
                     "routes": done["route"].value_counts().to_dict()}  # fmt: skip
    step("recording the batch run in MLflow")
    track_run(name, version, data, result, None)
    return result


def _one_partition(layout: Any, features_at: Callable, model: Any, name: str, version: str, conf: Any, t: int,
                   out: Path, reasons: int, batch: str, k: int) -> pd.DataFrame:  # fmt: skip
    """On a worker: one partition scored, written and journaled; its counts."""
    frame = features_at(layout, k, t, conf)
    id_name = motions.get(model.motion).id_column
    result, shown = score_chunk(
        model, conf, frame, frame[id_name].astype(str).to_numpy(), id_name, None, reasons
    )
    result.to_parquet(out / f"part-{k:05d}.parquet", index=False)
    settings = Settings.load()
    as_of = frame["as_of"].dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(dtype=object)
    with Store.borrowed(None, settings) as store:  # a worker's store for this partition, closed after it
        journal = ScoreLog(store, settings.home)
        journal.append_batches(chunk_log_batches(f"{batch}-{k}", 0, as_of, model.motion, name, version, result,
                                                 id_name, shown))  # fmt: skip
        journal.close(timeout=60)
    return pd.DataFrame({"partition": [k], "rows": [len(result)],
                         "tiers": [json.dumps(result["tier"].value_counts().to_dict())],
                         "routes": [json.dumps(result["route"].value_counts().to_dict())]})  # fmt: skip


def _sum_counts(column: pd.Series) -> dict[str, int]:
    total: dict[str, int] = {}
    for text in column:
        for k, v in json.loads(text).items():
            total[k] = total.get(k, 0) + int(v)
    return dict(sorted(total.items()))
