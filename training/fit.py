"""Fitting a model version: leakage guard → preprocessing → LightGBM (early-stopped, optionally searched, refit
on train + validation) → calibration on the validation fold's out-of-sample scores → tiers → the artifact."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.definitions import FeatureSet
from leadscore.config import MotionConfig
from leadscore.errors import UserError
from model.artifact import LeadScoreModel
from model.calibration import choose_calibrator
from model.cleaning import Cleaning
from model.drift import reference
from model.preprocess import Preprocessor
from model.reasons import wordings
from model.tiers import fit_tiers
from training.evaluate import Evaluation, evaluate
from training.leakage import Flag, guard
from training.split import Split, split_rows


@dataclass
class TrainingRows:
    """What a model version is fitted on. ``X``: the inputs (with ``time_col``, used for the split and ages);
    ``source``: the full input rows (every column, excluded ones too), kept as the holdout so that a later gate
    can score any version — whatever columns it uses — on the same recent rows; ``keep``: columns the leakage
    guard must not drop; ``segments``: columns to report metrics by; ``cleaning``: the data set's conventions."""

    X: pd.DataFrame
    y: np.ndarray
    time_col: str | None = None
    label_value: np.ndarray | None = None
    source: pd.DataFrame | None = None
    keep: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    cleaning: Cleaning | None = None


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
    test_predictions: dict[str, np.ndarray] = field(default_factory=dict)  # per model, on split.test rows


def _lgb_params(conf: MotionConfig, seed: int) -> dict[str, Any]:
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "verbosity": -1,
        "seed": seed,
        "num_threads": 2,
        "deterministic": True,
        "force_col_wise": True,
    } | dict(conf.model.params)


def _train_booster(params: dict, Xtr, ytr, Xva, yva, cat_idx: list[int], conf: MotionConfig) -> lgb.Booster:
    dtrain = lgb.Dataset(Xtr, ytr, categorical_feature=cat_idx, free_raw_data=False)
    dvalid = lgb.Dataset(Xva, yva, categorical_feature=cat_idx, reference=dtrain)
    return lgb.train(
        params,
        dtrain,
        num_boost_round=conf.model.max_rounds,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(conf.model.early_stopping_rounds, verbose=False)],
    )


def _refit(params: dict, X: np.ndarray, y: np.ndarray, cat_idx: list[int], rounds: float) -> lgb.Booster:
    """The final booster: train + validation rows, the early-stopped rounds scaled to the larger data.

    The calibrator and tier thresholds stay those fitted on the validation fold's out-of-sample predictions.
    """
    return lgb.train(
        params, lgb.Dataset(X, y, categorical_feature=cat_idx), num_boost_round=max(1, round(rounds))
    )


def _search(params: dict, trials: int, Xtr, ytr, Xva, yva, cat_idx, conf) -> dict:
    try:
        import optuna
    except ImportError:
        raise UserError("hyper-parameter search needs optuna: pip install 'leadscore[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial) -> float:
        p = params | {
            "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10, log=True),
        }
        return _train_booster(p, Xtr, ytr, Xva, yva, cat_idx, conf).best_score["valid_0"]["binary_logloss"]

    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=conf.model.seed)
    )
    study.optimize(objective, n_trials=trials)
    return params | study.best_params


def _check_positives(y: np.ndarray, conf: MotionConfig, name: str) -> int:
    positives = int(y.sum())
    if positives < conf.promotion.min_positives:
        raise UserError(
            f"{name}: only {positives} positive rows; at least {conf.promotion.min_positives} are "
            "needed to train and register a model (promotion.min_positives in the motion conf)"
        )
    return positives


def fit_and_evaluate(
    rows: TrainingRows, conf: MotionConfig, *, name: str, fs: FeatureSet | None, search: int = 0
) -> Fitted:
    """A model version fitted on the train and validation folds and evaluated on the test fold."""
    seed = conf.model.seed
    y = np.asarray(rows.y, dtype=np.int8)
    positives = _check_positives(y, conf, name)
    split = split_rows(y, rows.X[rows.time_col].to_numpy() if rows.time_col else None, seed)
    flags = guard(
        rows.X.iloc[split.train],
        y[split.train],
        conf.leakage.max_single_feature_auc,
        keep=rows.keep,
        skip=[rows.time_col] if rows.time_col else [],
    )
    X = rows.X.drop(columns=[f.column for f in flags])
    pre = Preprocessor(
        max_levels=conf.model.max_category_levels, time_column=rows.time_col, cleaning=rows.cleaning
    ).fit(X.iloc[split.train])
    Xm = pre.transform(X)
    cat_idx = [pre.features_.index(c) for c in pre.categorical_]
    params = _lgb_params(conf, seed)
    Xtr, ytr, Xva, yva = Xm[split.train], y[split.train], Xm[split.valid], y[split.valid]
    trials = search or conf.model.search_trials
    if trials:
        params = _search(params, trials, Xtr, ytr, Xva, yva, cat_idx, conf)
    booster = _train_booster(params, Xtr, ytr, Xva, yva, cat_idx, conf)
    raw_valid = np.asarray(booster.predict(Xva))
    calibrator, briers = choose_calibrator(raw_valid, yva, seed)
    p_valid = np.clip(calibrator.predict(raw_valid), 0, 1)
    rounds = booster.best_iteration or booster.current_iteration()
    fit_rows = np.r_[split.train, split.valid]
    if conf.model.refit:
        booster = _refit(
            params, Xm[fit_rows], y[fit_rows], cat_idx, rounds * len(fit_rows) / len(split.train)
        )
    value_feature = conf.value.value_feature if conf.value.value_feature in pre.features_ else None
    vcol = pre.features_.index(value_feature) if value_feature else None
    tiers = fit_tiers(conf, p_valid, Xva[:, vcol] if vcol is not None else None)
    model = LeadScoreModel(
        name=name,
        motion=conf.motion,
        feature_set=fs.name if fs else None,
        preprocessor=pre,
        booster=booster,
        calibrator=calibrator,
        tiers=tiers,
        words=wordings(pre.features_, fs),
        value_feature=value_feature,
        reference=reference(
            Xtr,
            pre.features_,
            pre.categorical_,
            np.clip(calibrator.predict(np.asarray(booster.predict(Xtr))), 0, 1),
        ),
    )
    ev: Evaluation = evaluate(model, conf, X, Xm, y, split, rows.label_value, rows.segments, seed)
    source = rows.X if rows.source is None else rows.source
    holdout = source.iloc[split.test].reset_index(drop=True).assign(label=y[split.test])
    if rows.label_value is not None:
        holdout["label_value"] = rows.label_value[split.test]
    params = params | {
        "best_iteration": rounds,
        "final_rounds": booster.current_iteration(),
        "refit": conf.model.refit,
        "split": split.kind,
        "calibration": calibrator.method,
        "rows_train": len(split.train),
        "rows_valid": len(split.valid),
        "rows_test": len(split.test),
        "positives": positives,
        "features": len(pre.features_),
    }
    return Fitted(
        model,
        ev.metrics,
        ev.tables,
        ev.images,
        flags,
        [(d.column, d.reason) for d in pre.dropped_],
        holdout,
        params,
        split,
        briers,
        ev.predictions,
    )
