"""Tracking: a fitted version logged to MLflow (params, metrics, tables, plots, holdout, the model with its
signature and pinned requirements) and registered — the registry is the only hand-off to serving."""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import features
import leadscore
import model
from leadscore.config import MotionConfig
from model.registry import after_registration, client, setup_mlflow
from training.fit import Fitted


@dataclass
class TrainResult:
    name: str
    version: str
    run_id: str
    alias: str
    fitted: Fitted


def log_and_register(f: Fitted, conf: MotionConfig, tags: dict[str, str]) -> TrainResult:
    import mlflow
    from mlflow.models import infer_signature

    setup_mlflow()
    name = f.model.name
    mlflow.set_experiment(f"leadscore-{name}")
    example = f.holdout.drop(columns=[c for c in ("label", "label_value") if c in f.holdout]).head(5)
    pre = f.model.preprocessor
    if pre.time_column in example.columns and "date" not in pre.kinds_.values():
        example = example.drop(columns=[pre.time_column])  # a split column, not a model input
    with mlflow.start_run(run_name=f"{name}-{tags.get('source', 'train')}") as run:
        mlflow.set_tags(tags | {"motion": conf.motion, "model_name": name})
        mlflow.log_params({k: v for k, v in f.params.items()})
        for model_name, vals in f.metrics.items():
            prefix = "test" if model_name == "model" else model_name
            mlflow.log_metrics({f"{prefix}_{k}": v for k, v in vals.items() if np.isfinite(v)})
        for tname, table in f.tables.items():
            if len(table):
                mlflow.log_table(table, f"tables/{tname}.json")
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            for fname, png in f.images.items():
                (d / fname).write_bytes(png)
                mlflow.log_artifact(str(d / fname), "plots")
            report = {
                "leakage_excluded": [vars(x) for x in f.flags],
                "preprocessing_dropped": f.dropped,
                "calibration_cv_brier": f.calibration_briers,
                "tiers": vars(f.model.tiers),
                "metrics": f.metrics,
            }
            (d / "evaluation.json").write_text(json.dumps(report, indent=2, default=str))
            mlflow.log_artifact(str(d / "evaluation.json"))
            f.holdout.to_parquet(d / "holdout.parquet", index=False)
            mlflow.log_artifact(str(d / "holdout.parquet"), "holdout")
        with (
            warnings.catch_warnings()
        ):  # its hint on integer columns with missing values: _optional_inputs does it
            warnings.filterwarnings(
                "ignore", message="Hint: Inferred schema contains integer column", category=UserWarning
            )
            signature = _optional_inputs(infer_signature(example, f.model.predict(None, example)))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=f.model,
            signature=signature,
            input_example=example,
            registered_model_name=name,
            pip_requirements=_requirements(),
            code_paths=MODEL_CODE,  # the pickled model's own modules: it loads where this project is not installed
        )
        version = str(info.registered_model_version)
    client().set_model_version_tag(name, version, "motion", conf.motion)
    alias = after_registration(name, version, f.metrics["model"], run.info.run_id)
    return TrainResult(name, version, run.info.run_id, alias, f)


def _optional_inputs(signature):
    """Every input may be left out (the model treats it as unknown); each keeps the type it had in training:
    integer columns ``long``, other numbers ``double``, categories ``string``."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    cols: list[ColSpec | TensorSpec] = [
        ColSpec(c.type, c.name, required=False) for c in signature.inputs.inputs
    ]
    return ModelSignature(inputs=Schema(cols), outputs=signature.outputs)


# What unpickling a LeadScoreModel imports beyond the project's own modules (logged with it: MODEL_CODE).
MODEL_REQUIREMENTS = ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "pyarrow", "numba", "pydantic",
                      "pydantic-settings", "pyyaml")  # fmt: skip
MODEL_CODE = [m.__path__[0] for m in (leadscore, model, features)]


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in MODEL_REQUIREMENTS]
