"""Features beyond one machine: the canonical tables partitioned by entity on disk, each partition computed on
a Dask cluster by the same functions as in-process, so no worker ever holds the whole data set.

``partition`` reads each table as a dask.dataframe and writes it as Parquet partitioned by a stable hash of the
entity key (the account for B2B and hybrid: its leads, events and outcomes stay together, so account intent and
the buying group are whole; the customer for B2C). A task then reads one partition of every table, validates it
(``leadscore.schema.validate_tables``), prepares it and computes the point-in-time features with the in-process
functions. What depends on the whole data set — the snapshot times of a training set, the as-of time of a
scoring run — is computed once on the cluster (the events' time range) and handed to every task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.historical import _snapshot, features_as_of
from features.prepare import Prepared, prepare
from leadscore import motions
from leadscore.config import MotionConfig
from leadscore.errors import UserError
from leadscore.files import find_table_file
from leadscore.schema import TABLES, validate_tables

PART = "_part"
DAY = 86_400
EVENTS_PER_PARTITION = 1_000_000  # a task's share: about 1.5 GB of worker memory at its peak (bench/scale.py)


def entity_key(motion: str) -> str:
    return "customer_id" if motions.get(motion).family == "b2c" else "account_id"


def bucket(keys: pd.Series, n: int) -> pd.Series:
    """A stable partition number per entity key (the same on every machine and run)."""
    h = pd.util.hash_pandas_object(keys.astype("str"), index=False).to_numpy()
    return pd.Series((h % np.uint64(n)).astype(np.int32), index=keys.index)


@dataclass(frozen=True)
class Layout:
    """Where the partitioned tables are, how many partitions, and the events' time range (epoch seconds)."""

    root: Path
    motion: str
    n: int
    ts_min: int
    ts_max: int

    def tables(self, k: int) -> dict[str, pd.DataFrame]:
        """Partition ``k`` of every table, validated as ``load_dataset`` validates a folder."""
        raw = {}
        for name, spec in TABLES[self.motion].items():
            folder = self.root / name / f"{PART}={k}"
            files = sorted(folder.glob("*.parquet"))
            frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else None
            raw[name] = frame if frame is not None else pd.DataFrame({c: [] for c in spec.names})
        return validate_tables(
            self.motion, {k2: v.drop(columns=[PART], errors="ignore") for k2, v in raw.items()}
        )


def partitions_for(data_dir: str | Path, motion: str, workers: int) -> int:
    """Enough partitions to keep every worker busy (two each) and each one near ``EVENTS_PER_PARTITION`` events,
    so a worker's memory depends on the partition, not on the data set (the row count is Parquet metadata)."""
    import dask.dataframe as dd

    path = find_table_file(Path(data_dir), "events")
    events = len(dd.read_parquet(str(path))) if path.suffix == ".parquet" else 0
    return max(2, 2 * workers, -(-events // EVENTS_PER_PARTITION))


def partition(data_dir: str | Path, motion: str, out: str | Path, n: int) -> Layout:
    """Write the motion's tables under ``out`` partitioned by entity (``n`` partitions), on the current Dask
    client (or Dask's default scheduler); returns the layout."""
    import dask.dataframe as dd

    root = Path(out)
    key = entity_key(motion)
    ts_range = None
    for name in TABLES[motion]:
        path = find_table_file(Path(data_dir), name)
        ddf = dd.read_parquet(str(path)) if path.suffix == ".parquet" else dd.read_csv(str(path), dtype=str)
        if key not in ddf.columns:
            raise UserError(f"{path}: no {key} column to partition {name} by")
        ddf = ddf.assign(**{PART: ddf[key].map_partitions(bucket, n, meta=(PART, "int32"))})
        ddf.to_parquet(str(root / name), partition_on=[PART], write_index=False, overwrite=True)
        if name == "events":
            ts = dd.to_datetime(ddf["ts"], utc=True) if path.suffix != ".parquet" else ddf["ts"]
            lo, hi = dd.compute(ts.min(), ts.max())
            ts_range = (int(pd.Timestamp(lo).timestamp()), int(pd.Timestamp(hi).timestamp()))
    assert ts_range is not None
    return Layout(root, motion, n, *ts_range)


def _prepared(layout: Layout, k: int) -> Prepared:
    return prepare(layout.motion, layout.tables(k))


def features_at(layout: Layout, k: int, as_of: int, conf: MotionConfig) -> pd.DataFrame:
    """Partition ``k``'s features as of ``as_of`` (the in-process ``features_as_of``)."""
    return features_as_of(_prepared(layout, k), as_of, conf)


def snapshot_times(layout: Layout, conf: MotionConfig) -> list[int]:
    """The training snapshots, from the whole data set's time range (as ``historical.snapshot_times``)."""
    end = layout.ts_max - conf.horizon_days * DAY
    start = layout.ts_min + 30 * DAY
    times = [end - k * conf.snapshots.every_days * DAY for k in range(conf.snapshots.count)]
    times = sorted(t for t in times if t >= start)
    if not times:
        raise UserError(
            f"the data spans too little time for a {conf.horizon_days}-day horizon and a 30-day warm-up"
        )
    return times


def training_rows(layout: Layout, k: int, conf: MotionConfig, times: list[int]) -> pd.DataFrame:
    """Partition ``k``'s stacked snapshots (the in-process ``_snapshot`` for each time)."""
    p = _prepared(layout, k)
    return pd.concat([_snapshot(p, t, conf, None) for t in times], ignore_index=True)


def per_partition(layout: Layout, fn: Callable[[int], pd.DataFrame], meta: pd.DataFrame | None = None):
    """A dask.dataframe whose partition ``k`` is ``fn(k)`` (computed on the cluster, one task each)."""
    import dask.dataframe as dd

    extra = {"meta": meta} if meta is not None else {}  # without it, dask computes partition 0 for its shape
    return dd.from_map(fn, list(range(layout.n)), enforce_metadata=False, **extra)
