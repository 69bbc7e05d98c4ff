"""Batch scoring (``leadscore score``): a flat file for spec models, canonical data for motion models.

Keeps input order and the id column; adds score, score_100, tier, route and the top reasons. Every row is
appended to the score log, like real-time scores.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from features.historical import features_as_of, latest_time
from features.prepare import prepare
from leadscore import motions
from leadscore.config import Route, check_routes, load_config
from leadscore.errors import UserError
from leadscore.files import read_table
from leadscore.progress import steps
from leadscore.schema import load_dataset
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.times import epoch_seconds, format_utc
from model.exports import load_spec
from model.registry import load, resolve
from serving.batch_parts import Writer, chunk_log_batches, score_chunk, track_run
from serving.partitioned_scoring import event_rows, score_in_parts, score_partitioned
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
    with steps() as step, Store.borrowed(store) as owned:
        step("loading the model")
        return _score_file(step, model_ref, data, out, as_of, reasons, owned, spec_path, allow_missing,
                           scheduler if scheduler is not None else Settings.load().dask_scheduler)  # fmt: skip


def _score_file(
    step: Callable[[str], None],
    model_ref: str,
    data: str | Path,
    out: str | Path,
    as_of: str | None,
    reasons: int,
    store: Store,
    spec_path: str | None,
    allow_missing: bool = False,
    scheduler: str | None = None,
) -> pd.DataFrame:
    name, version = resolve(model_ref)
    model, version = load(f"{name}/{version}")
    conf = load_config(model.motion)
    if model.routes:  # a spec model's own routes, in place of the motion's
        conf = conf.with_routes([Route.model_validate(r) for r in model.routes])
    data = Path(data)
    consent: tuple[np.ndarray, np.ndarray] | None = None  # a spec model's mapped consent
    coverage = None
    if model.feature_set:  # a motion model: canonical tables in a folder
        if not data.is_dir():
            raise UserError(f"model {name!r} scores canonical {model.motion} data: pass a folder of tables")
        if scheduler:
            return score_partitioned(
                step, model, name, version, conf, data, Path(out), as_of, reasons, scheduler
            )
        if event_rows(data) > Settings.load().max_events_in_memory:
            return score_in_parts(step, model, name, version, conf, data, Path(out), as_of, reasons, store)
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
        spec = load_spec(spec_path) if spec_path else None
        reader = spec.reader() if spec is not None else model.reader
        if spec is not None and spec.routes:  # routes are policy: the spec's as it reads now, no retraining
            conf = conf.with_routes(spec.routes)
        check_routes(conf, model.columns, name, own=bool(model.routes or (spec and spec.routes)))
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
    journal = ScoreLog(store, settings.home, max_mb=settings.journal_max_mb).start()
    batch = f"batch-{uuid.uuid4().hex[:12]}"
    as_of_text = (
        frame["as_of"].dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(dtype=object)
        if model.feature_set
        else np.full(len(inputs), format_utc(int(time.time())), dtype=object)
    )
    id_name = id_col or "row"
    parts: list[pd.DataFrame] = []
    writer = Writer(out)
    try:
        for s in range(0, len(inputs), CHUNK):
            part = inputs.iloc[s : s + CHUNK]
            span = None if consent is None else (consent[0][s : s + CHUNK], consent[1][s : s + CHUNK])
            result, shown = score_chunk(  # this process scores alone: LightGBM's SHAP may use every core
                model, conf, part, ids.to_numpy()[s : s + CHUNK], id_name, span, reasons, threads=0
            )
            writer.write(result)
            journal.append_batches(chunk_log_batches(batch, s, as_of_text[s : s + CHUNK], model.motion, name, version,
                                                     result, id_name, shown))  # fmt: skip
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
    track_run(name, version, data, result, coverage)
    return result
