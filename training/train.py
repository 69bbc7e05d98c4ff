"""Training per motion (canonical data) or per spec (a flat export): split → guard → preprocess → LightGBM
with early stopping → calibrate → fit tiers → evaluate beside two baselines → log to MLflow → register.

``fit_and_evaluate`` is pure (no MLflow); ``train_motion`` / ``train_spec`` are the thin wiring.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.batch import prepare, training_set
from features.definitions import FeatureSet, feature_set
from leadscore.config import MotionConfig, load_config
from leadscore.errors import UserError
from leadscore.schema import load_dataset
from training import baselines, metrics, plots
from training.calibration import choose_calibrator
from training.drift import reference
from training.leakage import Flag, guard
from training.model import LeadScoreModel
from training.preprocess import Cleaning, Preprocessor
from training.reasons import wordings
from training.spec import DataSpec, load_spec, read_flat
from training.tiers import fit_tiers

ID_COLUMNS = ("lead_id", "customer_id", "account_id")
TIME = "as_of"


@dataclass
class Split:
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    kind: str


def split_rows(y: np.ndarray, times: np.ndarray | None, seed: int) -> Split:
    """Out-of-time when a timestamp exists (latest 20% test, the next latest 20% validation), else stratified."""
    n = len(y)
    if times is not None:
        t = pd.to_datetime(pd.Series(times)).to_numpy()
        cut = np.quantile(t.astype("int64"), 0.8)
        test = np.flatnonzero(t.astype("int64") >= cut)
        rest = np.flatnonzero(t.astype("int64") < cut)
        cut2 = np.quantile(t[rest].astype("int64"), 0.8) if len(rest) else 0
        valid = rest[t[rest].astype("int64") >= cut2]
        train = rest[t[rest].astype("int64") < cut2]
        kind = "out-of-time"
    else:
        from sklearn.model_selection import train_test_split
        idx = np.arange(n)
        rest, test = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
        train, valid = train_test_split(rest, test_size=0.2, stratify=y[rest], random_state=seed)
        kind = "stratified"
    for name, part in (("train", train), ("validation", valid), ("test", test)):
        if len(part) == 0 or y[part].min() == y[part].max():
            raise UserError(f"the {name} fold has {len(part)} rows and only one class; need more data or more time")
    return Split(np.sort(train), np.sort(valid), np.sort(test), kind)


@dataclass
class Fitted:
    model: LeadScoreModel
    metrics: dict[str, dict[str, float]]
    tables: dict[str, pd.DataFrame]
    images: dict[str, bytes]
    flags: list[Flag]
    dropped: list[tuple[str, str]]
    holdout: pd.DataFrame
    params: dict[str, Any]
    split: Split
    calibration_briers: dict[str, float] = field(default_factory=dict)
    test_predictions: dict[str, np.ndarray] = field(default_factory=dict)   # per model, on split.test rows


def _lgb_params(conf: MotionConfig, seed: int) -> dict[str, Any]:
    return {"objective": "binary", "metric": "binary_logloss", "verbosity": -1, "seed": seed, "num_threads": 2,
            "deterministic": True, "force_col_wise": True} | dict(conf.model.params)


def _train_booster(params: dict, Xtr, ytr, Xva, yva, cat_idx: list[int], conf: MotionConfig) -> lgb.Booster:
    dtrain = lgb.Dataset(Xtr, ytr, categorical_feature=cat_idx, free_raw_data=False)
    dvalid = lgb.Dataset(Xva, yva, categorical_feature=cat_idx, reference=dtrain)
    return lgb.train(params, dtrain, num_boost_round=conf.model.max_rounds, valid_sets=[dvalid],
                     callbacks=[lgb.early_stopping(conf.model.early_stopping_rounds, verbose=False)])


def _refit(params: dict, X: np.ndarray, y: np.ndarray, cat_idx: list[int], rounds: float) -> lgb.Booster:
    """The final booster: train + validation rows, the early-stopped rounds scaled to the larger data.

    The calibrator and tier thresholds stay those fitted on the validation fold's out-of-sample predictions.
    """
    return lgb.train(params, lgb.Dataset(X, y, categorical_feature=cat_idx), num_boost_round=max(1, round(rounds)))


def _search(params: dict, trials: int, Xtr, ytr, Xva, yva, cat_idx, conf) -> dict:
    try:
        import optuna
    except ImportError:
        raise UserError("hyper-parameter search needs optuna: pip install 'leadscore[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial) -> float:
        p = params | {"num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
                      "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
                      "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
                      "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10, log=True)}
        return _train_booster(p, Xtr, ytr, Xva, yva, cat_idx, conf).best_score["valid_0"]["binary_logloss"]

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=conf.model.seed))
    study.optimize(objective, n_trials=trials)
    return params | study.best_params


def fit_and_evaluate(X: pd.DataFrame, y: np.ndarray, conf: MotionConfig, *, name: str, fs: FeatureSet | None,
                     time_col: str | None = None, keep: list[str] = (), segments: list[str] = (),
                     label_value: np.ndarray | None = None, search: int = 0,
                     source: pd.DataFrame | None = None, cleaning: Cleaning | None = None) -> Fitted:
    """``source``: the full input rows (every column, excluded ones too), kept as the holdout so that a
    later gate can score any version — whatever columns it uses — on the same recent rows."""
    seed = conf.model.seed
    source = X if source is None else source
    y = np.asarray(y, dtype=np.int8)
    positives = int(y.sum())
    if positives < conf.promotion.min_positives:
        raise UserError(f"{name}: only {positives} positive rows; at least {conf.promotion.min_positives} are "
                        "needed to train and register a model (promotion.min_positives in the motion conf)")
    times = X[time_col].to_numpy() if time_col else None
    split = split_rows(y, times, seed)
    fit_rows = np.r_[split.train, split.valid]
    flags = guard(X.iloc[split.train], y[split.train], conf.leakage.max_single_feature_auc, keep=list(keep),
                  skip=[time_col] if time_col else [])
    X = X.drop(columns=[f.column for f in flags])
    pre = Preprocessor(max_levels=conf.model.max_category_levels, time_column=time_col,
                       cleaning=cleaning).fit(X.iloc[split.train])
    Xm = pre.transform(X)
    cat_idx = [pre.features_.index(c) for c in pre.categorical_]
    params = _lgb_params(conf, seed)
    Xtr, ytr, Xva, yva = Xm[split.train], y[split.train], Xm[split.valid], y[split.valid]
    trials = search or conf.model.search_trials
    if trials:
        params = _search(params, trials, Xtr, ytr, Xva, yva, cat_idx, conf)
    booster = _train_booster(params, Xtr, ytr, Xva, yva, cat_idx, conf)
    calibrator, briers = choose_calibrator(booster.predict(Xva), yva, seed)
    p_valid = np.clip(calibrator.predict(booster.predict(Xva)), 0, 1)
    rounds = booster.best_iteration or booster.current_iteration()
    if conf.model.refit:
        booster = _refit(params, Xm[fit_rows], y[fit_rows], cat_idx, rounds * len(fit_rows) / len(split.train))
    value_feature = conf.value.value_feature if conf.value.value_feature in pre.features_ else None
    vcol = pre.features_.index(value_feature) if value_feature else None
    tiers = fit_tiers(conf, p_valid, Xva[:, vcol] if vcol is not None else None)
    model = LeadScoreModel(
        name=name, motion=conf.motion, feature_set=fs.name if fs else None, preprocessor=pre, booster=booster,
        calibrator=calibrator, tiers=tiers, words=wordings(pre.features_, fs), value_feature=value_feature,
        reference=reference(Xtr, pre.features_, pre.categorical_, np.clip(calibrator.predict(booster.predict(Xtr)), 0, 1)))
    # Evaluation on the test fold, beside the baselines trained on the same rows.
    te = split.test
    yte, Xte = y[te], Xm[te]
    p = model.predict_matrix(Xte)
    frame_fit, frame_te = pre.frame(X.iloc[fit_rows]), pre.frame(X.iloc[te])
    p_lr = baselines.logistic(frame_fit, y[fit_rows], seed)(frame_te)
    p_nb = baselines.naive_bayes(frame_fit, y[fit_rows])(frame_te)
    m = {"model": metrics.core(yte, p), "logistic": metrics.core(yte, p_lr), "naive_bayes": metrics.core(yte, p_nb)}
    best_base = max(m["logistic"]["auc"], m["naive_bayes"]["auc"])
    m["model"]["auc_gain_vs_best_baseline"] = m["model"]["auc"] - best_base
    tiers_te = tiers.assign(p, Xte[:, vcol] if vcol is not None else None)
    value_te = label_value[te] if label_value is not None else None
    contrib = model.contributions(Xte[:5000])[:, :-1]
    mean_abs = pd.Series(np.abs(contrib).mean(0), index=pre.features_)
    tables = {
        "deciles": metrics.by_decile(yte, p),
        "tiers": metrics.by_group(yte, p, tiers_te, value_te).rename(columns={"group": "tier"}),
        "segments": metrics.segments(yte, p, X.iloc[te].reset_index(drop=True), list(segments)),
        "baseline_deciles": metrics.by_decile(yte, p_lr),
        "shap_mean_abs": mean_abs.rename("mean_abs_shap").rename_axis("feature").reset_index()
                                 .sort_values("mean_abs_shap", ascending=False),
    }
    title = f"{name} ({conf.motion})"
    curves = {"model": p, "logistic": p_lr, "naive Bayes": p_nb}
    images = {"calibration.png": plots.calibration_curve(yte, curves, f"calibration — {title}"),
              "gains.png": plots.gains_chart(yte, curves, title),
              "shap_summary.png": plots.shap_summary(mean_abs, f"SHAP summary — {title}")}
    holdout = source.iloc[te].reset_index(drop=True).assign(label=yte)
    if value_te is not None:
        holdout["label_value"] = value_te
    params = params | {"best_iteration": rounds, "final_rounds": booster.current_iteration(),
                       "refit": conf.model.refit, "split": split.kind, "calibration": calibrator.method,
                       "rows_train": len(split.train), "rows_valid": len(split.valid), "rows_test": len(te),
                       "positives": positives, "features": len(pre.features_)}
    return Fitted(model, m, tables, images, flags, [(d.column, d.reason) for d in pre.dropped_], holdout,
                  params, split, briers, {"model": p, "logistic": p_lr, "naive_bayes": p_nb})


# ---------------------------------------------------------------- wiring: MLflow + registry

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

    from training.registry import after_registration, setup_mlflow
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
            report = {"leakage_excluded": [vars(x) for x in f.flags], "preprocessing_dropped": f.dropped,
                      "calibration_cv_brier": f.calibration_briers, "tiers": vars(f.model.tiers),
                      "metrics": f.metrics}
            (d / "evaluation.json").write_text(json.dumps(report, indent=2, default=str))
            mlflow.log_artifact(str(d / "evaluation.json"))
            f.holdout.to_parquet(d / "holdout.parquet", index=False)
            mlflow.log_artifact(str(d / "holdout.parquet"), "holdout")
        with warnings.catch_warnings():  # its hint on integer columns with missing values: _optional_inputs does it
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
            signature = _optional_inputs(infer_signature(example, f.model.predict(None, example)))
        info = mlflow.pyfunc.log_model(
            name="model", python_model=f.model, signature=signature, input_example=example,
            registered_model_name=name, pip_requirements=_requirements())
        version = str(info.registered_model_version)
    from training.registry import client
    client().set_model_version_tag(name, version, "motion", conf.motion)
    alias = after_registration(name, version, f.metrics["model"], run.info.run_id)
    return TrainResult(name, version, run.info.run_id, alias, f)


def _optional_inputs(signature):
    """Every input may be missing or empty at scoring time (the model treats it as unknown).

    Numeric columns accept any number: a gap turns a pandas integer column into float64, which MLflow refuses
    for a ``long`` ("Can not safely convert float64 to int64"), and a ``double`` refuses int64 input; the
    model's own preprocessing casts every column.
    """
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, DataType, Schema
    numbers = (DataType.integer, DataType.long, DataType.float, DataType.double)
    cols = [ColSpec(AnyType() if c.type in numbers else c.type, c.name, required=False)
            for c in signature.inputs.inputs]
    return ModelSignature(inputs=Schema(cols), outputs=signature.outputs)


def _requirements() -> list[str]:
    from importlib.metadata import version
    return [f"{p}=={version(p)}" for p in ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "pyarrow",
                                                     "numba")]


def motion_frame(motion: str, data_dir: str | Path, conf: MotionConfig) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The point-in-time training set as (features with as_of, label, realised value)."""
    p = prepare(motion, load_dataset(data_dir, motion))
    ts = training_set(p, conf)
    drop = [c for c in (*ID_COLUMNS, "label", "label_value", *conf.model_inputs_exclude) if c in ts.columns]
    return ts.drop(columns=drop), ts["label"].to_numpy(), ts["label_value"].to_numpy()


def train_motion(motion: str, data_dir: str | Path, search: int = 0) -> TrainResult:
    conf = load_config(motion)
    fs = feature_set(conf.feature_set)
    X, y, v = motion_frame(motion, data_dir, conf)
    fitted = fit_and_evaluate(X, y, conf, name=motion, fs=fs, time_col=TIME, segments=conf.segments,
                              label_value=v, search=search)
    return log_and_register(fitted, conf, {"source": "motion", "feature_set": fs.name, "data": str(data_dir)})


def train_spec(spec_path: str | Path, data: str | Path | None = None, search: int = 0) -> TrainResult:
    spec = load_spec(spec_path)
    conf = load_config(spec.motion)
    fitted = fit_spec(spec, conf, data, search)
    return log_and_register(fitted, conf, {"source": "spec", "spec": str(spec_path)})


def fit_spec(spec: DataSpec, conf: MotionConfig, data: str | Path | None = None, search: int = 0) -> Fitted:
    X, y, _, raw = read_flat(spec, data, with_raw=True)
    return fit_and_evaluate(X, y, conf, name=spec.name, fs=None, time_col=spec.timestamp, keep=spec.keep,
                            segments=spec.segments or conf.segments, search=search, source=raw,
                            cleaning=spec.cleaning())
