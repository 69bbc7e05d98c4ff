"""The training pipelines, thin wiring: a motion's canonical data, or a flat export through its spec, to a
registered model version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.definitions import feature_set
from features.historical import training_set
from features.prepare import prepare
from leadscore import motions
from leadscore.config import MotionConfig, check_routes, load_config
from leadscore.motions import ID_COLUMNS
from leadscore.progress import stage
from leadscore.schema import load_dataset
from leadscore.settings import Settings
from model.exports import DataSpec, load_spec
from training.fit import Fitted, TrainingRows, fit_and_evaluate
from training.flat_export import read_flat
from training.split import TIME
from training.track import TrainResult, log_and_register


def motion_frame(
    motion: str,
    data_dir: str | Path,
    conf: MotionConfig,
    settings: Settings | None = None,
    scheduler: str | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The point-in-time training set as (features with as_of, label, realised value); on the Dask cluster of
    ``settings.dask_scheduler`` when one is set. What reading found (e.g. leads matched to accounts) is in the
    frame's ``attrs["notes"]``."""
    settings = settings or Settings.load()
    scheduler = scheduler or settings.dask_scheduler
    if scheduler:
        ts, notes = distributed_training_set(motion, data_dir, conf, settings, scheduler)
    else:
        with stage("reading the canonical tables"):
            p = prepare(motion, load_dataset(data_dir, motion))
        with stage("point-in-time features for every snapshot"):
            ts = training_set(p, conf)
        notes = dict(p.notes)
    drop = [c for c in (*ID_COLUMNS, "label", "label_value", *conf.model_inputs_exclude) if c in ts.columns]
    X = ts.drop(columns=drop)
    X.attrs["notes"] = notes
    return X, ts["label"].to_numpy(), ts["label_value"].to_numpy()


def distributed_training_set(
    motion: str, data_dir: str | Path, conf: MotionConfig, settings: Settings, scheduler: str
) -> tuple[pd.DataFrame, dict]:
    """The training set on a Dask cluster: the tables partitioned by entity, each partition's snapshots one task,
    written as partitioned Parquet (``<workdir>/<run>/training``); read back in the in-process order (as-of, then
    id), or as a stratified sample of ``max_training_rows`` when larger (the sample's size is in the notes)."""
    import functools
    import uuid

    from distributed import Client

    from features.partitioned import partition, partitions_for, per_partition, snapshot_times

    work = Path(settings.dask_workdir or settings.home / "partitions") / f"{motion}-{uuid.uuid4().hex[:8]}"
    with Client(scheduler) as client:
        n = partitions_for(data_dir, motion, len(client.scheduler_info()["workers"]))
        with stage(f"partitioning the tables by entity ({n} partitions)"):
            layout = partition(data_dir, motion, work / "tables", n)
        with stage("point-in-time features for every snapshot, per partition on the cluster"):
            times = snapshot_times(layout, conf)
            task = functools.partial(_partition_rows, layout, conf, times)
            per_partition(layout, task).to_parquet(str(work / "training"), write_index=False)
    ts = pd.read_parquet(work / "training")
    id_col = motions.get(motion).id_column
    notes: dict = {"dask_partitions": n, "training_rows": len(ts)}
    if len(ts) > settings.max_training_rows:
        share = settings.max_training_rows / len(ts)
        ts = ts.groupby("label", group_keys=False).sample(frac=share, random_state=conf.model.seed)
        notes["training_rows_sampled"] = len(ts)
    return ts.sort_values(["as_of", id_col], kind="stable").reset_index(drop=True), notes


def _partition_rows(layout, conf: MotionConfig, times: list[int], k: int) -> pd.DataFrame:
    from features.partitioned import training_rows

    return training_rows(layout, k, conf, times)


def motion_rows(X: pd.DataFrame, y: np.ndarray, v: np.ndarray, conf: MotionConfig) -> TrainingRows:
    """A motion's training set as the rows a version is fitted on (split on as-of, segments from the conf)."""
    return TrainingRows(X, y, time_col=TIME, label_value=v, segments=list(conf.segments))


def train_motion(
    motion: str, data_dir: str | Path, search_seconds: float | None = None, scheduler: str | None = None
) -> TrainResult:
    """A motion's model from its canonical data: its own settings, or a search of ``search_seconds``; on the
    Dask cluster at ``scheduler`` (or LEADSCORE_DASK_SCHEDULER) the training set is computed partitioned."""
    conf = load_config(motion)
    fs = feature_set(conf.feature_set)
    rows = motion_rows(*motion_frame(motion, data_dir, conf, scheduler=scheduler), conf)
    with stage("fitting, calibrating and evaluating beside the baselines"):
        fitted = fit_and_evaluate(rows, conf, name=motion, fs=fs, search_seconds=search_seconds or 0.0)
    fitted.params |= rows.X.attrs.get("notes", {})
    with stage("logging to MLflow and registering"):
        return log_and_register(
            fitted, conf, {"source": "motion", "feature_set": fs.name, "data": str(data_dir)}
        )


def train_spec(
    spec_path: str | Path, data: str | Path | None = None, search_seconds: float | None = None
) -> TrainResult:
    """A model from a flat export through its spec (searched by default: see ``fit_spec``)."""
    spec = load_spec(spec_path)
    conf = load_config(spec.motion)
    fitted = fit_spec(spec, conf, data, search_seconds)
    with stage("logging to MLflow and registering"):
        return log_and_register(fitted, conf, {"source": "spec", "spec": str(spec_path)})


def fit_spec(
    spec: DataSpec, conf: MotionConfig, data: str | Path | None = None, search_seconds: float | None = None
) -> Fitted:
    """A flat export's model. The motion's model settings were chosen for its canonical data, not for this
    export, so the model search runs by default, its budget growing with the rows (``model.search`` in the
    motion's conf); ``search_seconds`` = 0 uses the motion's settings as they are."""
    if spec.value:  # the export's own deal value replaces the motion's value feature
        conf = conf.model_copy(update={"value": conf.value.model_copy(update={"value_feature": spec.value})})
    if spec.routes:  # the export's own routes, in place of the motion's
        conf = conf.with_routes(spec.routes)
    with stage("reading the export"):
        X, y, _, raw = read_flat(spec, data, with_raw=True)
    check_routes(conf, list(X.columns), spec.name, own=bool(spec.routes))
    rows = TrainingRows(
        X,
        y,
        time_col=spec.timestamp,
        source=raw,
        keep=[*spec.keep, *([spec.value] if spec.value else [])],  # the deal value stays a model input
        segments=list(spec.segments or conf.segments),
        cleaning=spec.cleaning(),
    )
    budget = conf.model.search.budget(len(y)) if search_seconds is None else search_seconds
    what = f"searching for {budget:.0f} s at most, " if budget else ""
    with stage(f"{what}fitting, calibrating and evaluating beside the baselines"):
        fitted = fit_and_evaluate(rows, conf, name=spec.name, fs=None, search_seconds=budget)
    fitted.model.reader = spec.reader()  # scoring a raw export then needs no spec
    if spec.routes:  # a column the cleaning dropped (leakage guard, id-like, constant) is not read either
        check_routes(conf, fitted.model.columns, spec.name, own=True)
    fitted.model.routes = [r.model_dump() for r in spec.routes] if spec.routes else None
    return fitted
