"""Batch scoring (``leadscore score``): a flat file for spec models, canonical data for motion models.

Keeps input order and the id column; adds score, score_100, tier, route and the top reasons. Every row is
appended to the score log, like real-time scores.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

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
from serving.routing import decide_many
from serving.score_log import ScoreLog

log = logging.getLogger("leadscore.scoring")


def score_file(
    model_ref: str,
    data: str | Path,
    out: str | Path,
    as_of: str | None = None,
    reasons: int = 3,
    store: Store | None = None,
    spec_path: str | None = None,
    allow_missing: bool = False,
) -> pd.DataFrame:
    """Score a file (spec models: an export of the training file's shape, read as the model's own reader reads
    it; ``spec_path`` overrides) or a folder of canonical tables (motion models). The output keeps the id column
    under its own name and the input order; ``result.attrs`` carries ``missing_inputs`` and ``routes``."""
    with steps() as step:
        step("loading the model")
        return _score_file(step, model_ref, data, out, as_of, reasons, store, spec_path, allow_missing)


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
    step("scoring and explaining")
    X = model.preprocessor.transform(inputs)
    scored = model.score_matrix(X, reasons)
    # The score log keeps what the model saw, in readable values (levels, not codes), for the feedback loop.
    feats = [
        {c: model.preprocessor.display_value(c, v) for c, v in zip(model.columns, row, strict=True)}
        for row in X.tolist()
    ]
    columns: dict = {c: [f[c] for f in feats] for c in model.columns}
    if model.feature_set:  # the rules may read features the model does not score on (B2C consent)
        columns |= {c: frame[c].to_numpy() for c in frame.columns if c not in columns}
    step("routing")
    routes = [
        d.route
        for d in decide_many(
            conf,
            tiers=scored.tier,
            features=columns,
            expected_value=scored.expected_value,
            groups=scored.groups,
            stages=columns.get("lifecycle_stage"),
            consent_email=None if consent is None else consent[0].tolist(),
            consent_sms=None if consent is None else consent[1].tolist(),
        )
    ]
    if not model.feature_set and consent is None and motions.get(model.motion).family == "b2c":
        log.warning(
            "model %s maps no consent columns (consent: in its spec), so no lead has email or SMS consent and "
            "the %s policy suppresses them: routes %s",
            name,
            model.motion,
            pd.Series(routes).value_counts().to_dict(),
        )
    result = pd.DataFrame(
        {
            (id_col or "row"): ids.to_numpy(),
            "score": scored.score,
            "score_100": scored.score_100,
            "tier": scored.tier,
            "route": routes,
            "reasons": ["; ".join(f"{r['direction']} {r['text']}" for r in why) for why in scored.reasons]
            if scored.reasons is not None
            else [""] * len(X),
        }
    )
    step("writing the output")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        result.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        result.to_csv(out, index=False)
    else:
        raise UserError(f"--out must end in .csv or .parquet, not {out.suffix!r}")
    step("journaling and shipping the score log")
    result.attrs["missing_inputs"] = [c for c, _ in coverage.missing] if coverage else []
    result.attrs["routes"] = pd.Series(routes).value_counts().to_dict()
    _log(
        store or Store.default(),
        model,
        name,
        version,
        result,
        feats,
        frame["as_of"] if model.feature_set else None,
        id_col or "row",
    )
    step("recording the batch run in MLflow")
    _track(name, version, data, result, coverage)
    return result


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
            {"rows": float(len(result)), "missing_inputs": float(len(result.attrs["missing_inputs"])),
             "missing_weight": coverage.missing_weight if coverage else 0.0}
            | {f"tier_{k}": float(v) for k, v in result["tier"].value_counts().items()}
        )  # fmt: skip


def _log(
    store: Store,
    model,
    name: str,
    version: str,
    result: pd.DataFrame,
    feats: list[dict],
    as_of: pd.Series | None,
    id_col: str,
) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    batch = f"batch-{uuid.uuid4().hex[:12]}"
    when = (
        as_of.dt.strftime("%Y-%m-%d %H:%M:%S").tolist()
        if as_of is not None
        else [format_utc(int(time.time()))] * len(result)
    )
    rows = [
        (
            f"{batch}-{i}",
            now,
            when[i],
            model.motion,
            str(r[id_col]),
            name,
            version,
            float(r["score"]),
            r["tier"],
            r["route"],
            "batch",
            json.dumps(_clean(feats[i])),
        )
        for i, r in enumerate(result.to_dict("records"))
    ]
    journal = ScoreLog(store, Settings.load().home)
    journal.append(rows)
    journal.close(timeout=60)  # fsync, then ship; what the store does not take now waits in the journal
    if journal.unshipped_bytes():
        log.warning(
            "the store took %d of %d score-log rows; the rest wait in the journal under %s and are shipped "
            "by the next scoring run or service start",
            journal.written,
            len(rows),
            journal.dir,
        )


def _clean(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()}
