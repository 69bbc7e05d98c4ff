"""Batch scoring (``leadscore score``): a flat file for spec models, canonical data for motion models.

Keeps input order and the id column; adds score, score_100, tier, route and the top reasons. Every row is
appended to the score log, like real-time scores.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.historical import features_as_of, latest_time
from features.prepare import prepare
from leadscore import motions
from leadscore.config import load_config
from leadscore.errors import UserError
from leadscore.progress import steps
from leadscore.schema import load_dataset, read_table
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.times import epoch_seconds, format_utc
from model.artifact import Coverage
from model.exports import load_spec
from model.registry import load, resolve
from serving.routing import route_names
from serving.score_log import ScoreLog

log = logging.getLogger("leadscore.scoring")
CHUNK = 100_000  # rows scored, written and journaled at a time: memory stays flat whatever the file's length


def score_file(
    model_ref: str,
    data: str | Path,
    out: str | Path,
    as_of: str | None = None,
    reasons: int = 3,
    store: Store | None = None,
    spec_path: str | None = None,
    allow_missing: bool = False,
    scheduler: str | None = None,
) -> pd.DataFrame:
    """Score a file (spec models: an export of the training file's shape, read as the model's own reader reads
    it; ``spec_path`` overrides) or a folder of canonical tables (motion models). The output keeps the id column
    under its own name and the input order; ``result.attrs`` carries ``missing_inputs`` and ``routes``."""
    with steps() as step:
        step("loading the model")
        return _score_file(step, model_ref, data, out, as_of, reasons, store, spec_path, allow_missing,
                           scheduler if scheduler is not None else Settings.load().dask_scheduler)  # fmt: skip


def _score_file(
    step: Callable[[str], None],
    model_ref: str,
    data: str | Path,
    out: str | Path,
    as_of: str | None,
    reasons: int,
    store: Store | None,
    spec_path: str | None,
    allow_missing: bool = False,
    scheduler: str | None = None,
) -> pd.DataFrame:
    name, version = resolve(model_ref)
    model, version = load(f"{name}/{version}")
    conf = load_config(model.motion)
    data = Path(data)
    consent: tuple[np.ndarray, np.ndarray] | None = None  # a spec model's mapped consent
    coverage = None
    if model.feature_set:  # a motion model: canonical tables in a folder
        if not data.is_dir():
            raise UserError(f"model {name!r} scores canonical {model.motion} data: pass a folder of tables")
        if scheduler:
            return _score_partitioned(
                step, model, name, version, conf, data, Path(out), as_of, reasons, scheduler
            )
        step("reading the canonical tables and computing features")
        p = prepare(model.motion, load_dataset(data, model.motion))
        t = epoch_seconds(as_of) if as_of else latest_time(p)
        frame = features_as_of(p, t, conf)
        id_col: str | None = motions.get(model.motion).id_column
        ids, inputs = frame[id_col].astype(str), frame
    else:
        if data.is_dir():
            raise UserError(
                f"model {name!r} is a spec model: pass the flat file it was trained on the shape of"
            )
        step("reading the export")
        reader = load_spec(spec_path).reader() if spec_path else model.reader
        inputs = reader.read(data) if reader is not None else read_table(data)
        id_col = reader.id if reader is not None else None
        settings = Settings.load()
        coverage = model.coverage(list(inputs.columns))
        problem = coverage.problem(
            settings.max_missing_inputs,
            settings.max_missing_weight,
            reader.read_options.get("sep") if reader else None,
        )
        if problem and not allow_missing:
            raise UserError(f"{data}: {problem}")
        if coverage.missing:
            log.warning(
                "%s lacks %d model input(s): %s",
                data,
                len(coverage.missing),
                [c for c, _ in coverage.missing],
            )
        consent = reader.consent_of(inputs) if reader is not None else None
        ids = (
            inputs[id_col].astype(str)
            if id_col and id_col in inputs.columns
            else pd.Series(np.arange(len(inputs)).astype(str), index=inputs.index)
        )
    step("scoring, explaining and routing, in chunks")
    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise UserError(f"--out must end in .csv or .parquet, not {out.suffix!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not model.feature_set and consent is None and motions.get(model.motion).family == "b2c":
        no_consent_warning = True
    else:
        no_consent_warning = False
    settings = Settings.load()
    # its shipper thread copies rows into the store while the next chunks are scored (the other core)
    journal = ScoreLog(store or Store.default(), settings.home, max_mb=settings.journal_max_mb).start()
    batch = f"batch-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC).isoformat(timespec="seconds")
    as_of_text = (
        frame["as_of"].dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(dtype=object)
        if model.feature_set
        else np.full(len(inputs), format_utc(int(time.time())), dtype=object)
    )
    id_name = id_col or "row"
    parts: list[pd.DataFrame] = []
    writer = _Writer(out)
    try:
        for s in range(0, len(inputs), CHUNK):
            part = inputs.iloc[s : s + CHUNK]
            span = None if consent is None else (consent[0][s : s + CHUNK], consent[1][s : s + CHUNK])
            result, shown = score_chunk(
                model, conf, part, ids.to_numpy()[s : s + CHUNK], id_name, span, reasons
            )
            writer.write(result)
            journal.append(_log_rows(batch, s, now, as_of_text[s : s + CHUNK], model.motion, name, version, result,
                                     id_name, shown))  # fmt: skip
            journal.wait_below(
                journal.max_bytes // 4
            )  # the shipper fell behind: a long run never fills the cap
            parts.append(result)
        writer.close()
    except BaseException:
        writer.abort()
        journal.close(timeout=5)
        raise
    result = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[id_name, "score"])
    routes_count = result["route"].value_counts().to_dict() if len(result) else {}
    if no_consent_warning:
        log.warning(
            "model %s maps no consent columns (consent: in its spec), so no lead has email or SMS consent and "
            "the %s policy suppresses them: routes %s", name, model.motion, routes_count,
        )  # fmt: skip
    step("shipping the score log")
    result.attrs["missing_inputs"] = [c for c, _ in coverage.missing] if coverage else []
    result.attrs["routes"] = routes_count
    result.attrs["rows"] = len(result)
    result.attrs["tiers"] = result["tier"].value_counts().sort_index().to_dict() if len(result) else {}
    journal.close(timeout=60)  # fsync, then ship; what the store does not take now waits in the journal
    if journal.unshipped_bytes():
        log.warning(
            "the store took %d of %d score-log rows; the rest wait in the journal under %s and are shipped "
            "by the next scoring run or service start", journal.written, len(result), journal.dir,
        )  # fmt: skip
    step("recording the batch run in MLflow")
    _track(name, version, data, result, coverage)
    return result


def _score_partitioned(step: Callable[[str], None], model: Any, name: str, version: str, conf: Any, data: Path,
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
    _track(name, version, data, result, None)
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
    journal = ScoreLog(Store(settings.store_url), settings.home)
    as_of = frame["as_of"].dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(dtype=object)
    journal.append(_log_rows(f"{batch}-{k}", 0, datetime.now(UTC).isoformat(timespec="seconds"), as_of, model.motion,
                             name, version, result, id_name, shown))  # fmt: skip
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


def score_chunk(model: Any, conf: Any, part: pd.DataFrame, ids: np.ndarray, id_name: str,
                consent: tuple[np.ndarray, np.ndarray] | None, reasons: int) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """One chunk scored, explained (a line of reasons per row) and routed, all on columns; and the readable
    model inputs the score log keeps."""
    X = model.preprocessor.transform(part)
    scored = model.score_matrix(X, reasons, worded="text")
    shown = model.preprocessor.display_columns(X)  # what the model saw, readable (levels, not codes)
    rules = shown | (
        {c: part[c].to_numpy() for c in part.columns if c not in shown} if model.feature_set else {}
    )
    routes = route_names(
        conf, tiers=scored.tier, features=rules, expected_value=scored.expected_value,
        stages=rules.get("lifecycle_stage"),
        consent_email=None if consent is None else consent[0].tolist(),
        consent_sms=None if consent is None else consent[1].tolist(),
    )  # fmt: skip
    result = pd.DataFrame({
        id_name: ids, "score": scored.score, "score_100": scored.score_100, "tier": scored.tier, "route": routes,
        "reasons": scored.texts if scored.texts is not None else [""] * len(X),
    })  # fmt: skip
    return result, shown


class _Writer:
    """The output file written chunk by chunk (Parquet row groups, or CSV), in place only once complete."""

    def __init__(self, out: Path):
        self.out, self.tmp = out, out.with_name(f".{out.name}.partial")
        self._pq: Any = None

    def write(self, part: pd.DataFrame) -> None:
        if self.out.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(part, preserve_index=False)
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.tmp, table.schema)
            self._pq.write_table(table)
        else:
            part.to_csv(self.tmp, index=False, mode="a" if self.tmp.exists() else "w",
                        header=not self.tmp.exists())  # fmt: skip

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
        if not self.tmp.exists():  # nothing to score: an empty file with the columns
            self.write(pd.DataFrame(columns=["score"]))
            if self._pq is not None:
                self._pq.close()
        self.tmp.replace(self.out)

    def abort(self) -> None:
        if self._pq is not None:
            self._pq.close()
        self.tmp.unlink(missing_ok=True)


def _log_rows(batch: str, start: int, now: str, as_of: np.ndarray, motion: str, name: str, version: str,
              result: pd.DataFrame, id_name: str, shown: dict[str, np.ndarray]) -> list[tuple]:  # fmt: skip
    """Score-log rows for a chunk: the features as JSON text encoded for the whole chunk at once."""
    import polars as pl

    feats = pl.DataFrame(
        {
            c: pl.Series(c, v, nan_to_null=True)
            if v.dtype.kind == "f"
            else pl.Series(c, v.tolist(), dtype=pl.String)
            for c, v in shown.items()
        }  # fmt: skip
    )
    text = (feats.select(pl.struct(pl.all()).struct.json_encode()).to_series().to_list() if feats.width
            else ["{}"] * len(result))  # fmt: skip
    n = len(result)
    return list(zip(
        [f"{batch}-{i}" for i in range(start, start + n)], [now] * n, as_of.tolist(), [motion] * n,
        result[id_name].astype(str).tolist(), [name] * n, [version] * n, result["score"].astype(float).tolist(),
        result["tier"].tolist(), result["route"].tolist(), ["batch"] * n, text, strict=True,
    ))  # fmt: skip


def _track(name: str, version: str, data: Path, result: pd.DataFrame, coverage: Coverage | None) -> None:
    """The batch run in MLflow (experiment ``leadscore-scoring-NAME``): what was scored, with what, and which
    model inputs the file lacked."""
    import mlflow

    from model.registry import setup_mlflow

    setup_mlflow()
    mlflow.set_experiment(f"leadscore-scoring-{name}")
    with mlflow.start_run(run_name=f"score-{name}-v{version}"):
        mlflow.set_tags({"kind": "batch-scoring", "model_name": name, "model_version": version})
        mlflow.log_params(
            {"data": str(data)[:500], "missing_inputs": ", ".join(result.attrs["missing_inputs"])[:500]}
        )
        mlflow.log_metrics(
            {"rows": float(result.attrs["rows"]), "missing_inputs": float(len(result.attrs["missing_inputs"])),
             "missing_weight": coverage.missing_weight if coverage else 0.0}
            | {f"tier_{k}": float(v) for k, v in result.attrs["tiers"].items()}
        )  # fmt: skip
