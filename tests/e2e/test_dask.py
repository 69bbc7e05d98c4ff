"""Dask when one machine is not enough, on a distributed.LocalCluster (2 worker processes, a memory limit each):
the same features, training set and scores as in-process, every task holding one partition of entities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.historical import features_as_of, latest_time, training_set
from features.partitioned import features_at, partition
from features.prepare import prepare
from leadscore.config import load_config
from leadscore.schema import load_dataset
from leadscore.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="3GiB",
                      dashboard_address=None) as c:  # fmt: skip
        yield c.scheduler_address


def _rows(folder: Path) -> list[int]:
    return [len(pd.read_parquet(f)) for f in sorted(folder.rglob("*.parquet"))]


@pytest.mark.parametrize("motion", ["b2b", "b2c"])
def test_partitioned_features_and_training_set_equal_in_process(cluster, data_of, tmp_path, motion):
    from distributed import Client

    from training.pipelines import distributed_training_set

    conf = load_config(motion)
    p = prepare(motion, load_dataset(data_of(motion), motion))
    id_col = "customer_id" if motion == "b2c" else "lead_id"
    with Client(cluster):
        layout = partition(data_of(motion), motion, tmp_path / "parts", 4)
    events = _rows(tmp_path / "parts" / "events")
    assert len(events) >= 4 and sum(events) == len(load_dataset(data_of(motion), motion)["events"])
    assert max(events) < 0.5 * sum(events)  # no partition (task) holds the whole data set
    t = latest_time(p)
    assert layout.ts_max == t
    local = features_as_of(p, t, conf).sort_values(id_col).reset_index(drop=True)
    parts = (
        pd.concat([features_at(layout, k, t, conf) for k in range(4)])
        .sort_values(id_col)
        .reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(local, parts, check_dtype=False)
    s = Settings.load().model_copy(update={"dask_workdir": tmp_path / "work"})
    remote, notes = distributed_training_set(motion, data_of(motion), conf, s, cluster)
    ts = training_set(p, conf).sort_values(["as_of", id_col], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(ts, remote, check_dtype=False)
    written = _rows(next((tmp_path / "work").glob(f"{motion}-*")) / "training")
    assert (
        notes["dask_partitions"] == 4
        and len(written) == 4
        and sum(written) == len(ts)
        and max(written) < len(ts)
    )


def test_training_and_scoring_on_the_cluster_match_in_process(cluster, trained, b2b_dir, tmp_path):
    from serving.file_scoring import score_file
    from training.pipelines import train_motion

    r = train_motion("b2b", b2b_dir, scheduler=cluster)
    assert r.fitted.params["dask_partitions"] == 4 and r.fitted.metrics["model"]["auc"] > 0.6
    local = score_file("b2b@champion", b2b_dir, tmp_path / "local.parquet", scheduler="")
    summary = score_file("b2b@champion", b2b_dir, tmp_path / "scores", scheduler=cluster)
    files = sorted((tmp_path / "scores").glob("part-*.parquet"))
    assert len(files) == summary.attrs["partitions"] == 4
    remote = pd.concat([pd.read_parquet(f) for f in files]).set_index("lead_id").loc[local["lead_id"]]
    assert summary.attrs["rows"] == len(local) == len(remote)
    np.testing.assert_allclose(remote["score"].to_numpy(), local["score"].to_numpy(), rtol=0, atol=1e-9)
    assert (remote["tier"].to_numpy() == local["tier"].to_numpy()).all()
    assert (remote["route"].to_numpy() == local["route"].to_numpy()).all()
    assert summary.attrs["tiers"] == local["tier"].value_counts().sort_index().to_dict()


def test_more_events_than_memory_holds_are_scored_a_partition_at_a_time(
    trained, b2b_dir, tmp_path, monkeypatch
):
    """``leadscore score`` in-process past LEADSCORE_MAX_EVENTS_IN_MEMORY: the tables partitioned by account on
    disk and scored one partition at a time into the one output file — the same scores, tiers, routes and
    reasons as in memory, the partitions removed afterwards."""
    from serving.file_scoring import score_file

    local = score_file("b2b@champion", b2b_dir, tmp_path / "local.parquet", scheduler="")
    work = Settings.load().home / "partitions"
    before = set(work.glob("b2b-*"))
    monkeypatch.setenv("LEADSCORE_MAX_EVENTS_IN_MEMORY", "1000")
    summary = score_file("b2b@champion", b2b_dir, tmp_path / "parts.parquet", scheduler="")
    written = pd.read_parquet(tmp_path / "parts.parquet")
    assert summary.attrs["partitions"] >= 2 and summary.attrs["rows"] == len(local) == len(written)
    assert written["lead_id"].is_unique
    same = written.set_index("lead_id").loc[local["lead_id"]]
    np.testing.assert_allclose(same["score"].to_numpy(), local["score"].to_numpy(), rtol=0, atol=1e-9)
    for c in ("tier", "route", "reasons"):
        assert (same[c].to_numpy() == local[c].to_numpy()).all(), c
    assert summary.attrs["tiers"] == local["tier"].value_counts().sort_index().to_dict()
    assert set(work.glob("b2b-*")) == before  # this run's partitions are removed
