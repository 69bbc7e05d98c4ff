"""Fitting a model version: leakage guard → preprocessing → LightGBM (the motion's settings early-stopped on the
validation fold and refit on train + validation, or a time-bounded search cross-validated on the fit period whose
fold boosters are averaged beside a refit on every fit row, blended with a logistic regression when that wins)
→ calibration and tiers on out-of-fold scores of the same recipe → the artifact."""

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
from model.ensemble import average
from model.linear import LinearPart
from model.preprocess import Preprocessor
from model.reasons import wordings
from model.tiers import fit_tiers
from training.evaluate import Evaluation, evaluate
from training.leakage import Flag, guard
from training.search import candidates, choose_blend, folds_for, search, with_refit
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
    test_labels: np.ndarray | None = None  # the labels of split.test rows


def _lgb_params(conf: MotionConfig, seed: int) -> dict[str, Any]:
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "verbosity": -1,
        "seed": seed,
        "num_threads": 2,
        "deterministic": True,
        "force_col_wise": True,
    }


def _refit(params: dict, X: np.ndarray, y: np.ndarray, cat_idx: list[int], rounds: float) -> lgb.Booster:
    """The final booster of a one-fold fit: every fit row, the early-stopped rounds scaled to the larger data.

    The calibrator and tier thresholds stay those fitted on the out-of-fold predictions.
    """
    return lgb.train(
        params, lgb.Dataset(X, y, categorical_feature=cat_idx), num_boost_round=max(1, round(rounds))
    )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _check_positives(y: np.ndarray, conf: MotionConfig, name: str) -> int:
    positives = int(y.sum())
    if positives < conf.promotion.min_positives:
        raise UserError(
            f"{name}: only {positives} positive rows; at least {conf.promotion.min_positives} are "
            "needed to train and register a model (promotion.min_positives in the motion conf)"
        )
    return positives


def fit_and_evaluate(
    rows: TrainingRows,
    conf: MotionConfig,
    *,
    name: str,
    fs: FeatureSet | None,
    search_seconds: float = 0.0,
) -> Fitted:
    """A model version fitted on the fit period (train and validation folds), evaluated on the test fold.

    ``search_seconds`` > 0 cross-validates candidate settings within that budget (training/search.py) and
    blends with a logistic regression when it wins; 0 uses the motion's own settings, early-stopped on the
    validation fold. Either way the calibrator and the tiers are fitted on out-of-fold scores only."""
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
    base = _lgb_params(conf, seed)
    sc = conf.model.search
    searching = search_seconds > 0
    folds = folds_for(
        split.train, split.valid, y, sc.folds if searching else 1, split.kind != "stratified", seed
    )
    settings = (
        candidates(base, dict(conf.model.params), sc.max_candidates, seed)
        if searching
        else [base | dict(conf.model.params)]
    )
    found = search(
        Xm, y, folds, cat_idx, settings, max_rounds=conf.model.max_rounds,
        patience=conf.model.early_stopping_rounds, budget_seconds=search_seconds, max_members=sc.max_members,
    )  # fmt: skip
    if searching:
        found = with_refit(found, Xm, y, folds, cat_idx, sc.refit_weight)
    if searching and sc.blend:
        found = choose_blend(found, Xm, y, folds, cat_idx, seed)
    held = found.held_rows
    raw_held = _sigmoid(found.blended_oof())
    calibrator, briers = choose_calibrator(raw_held, y[held], seed)
    p_held = np.clip(calibrator.predict(raw_held), 0, 1)
    fit_rows = np.r_[split.train, split.valid]
    if len(folds) > 1 or not conf.model.refit:
        # cross-validated: the fold boosters averaged, and beside them a refit on every fit row when the search
        # weighs one in: the recipe whose out-of-fold scores the calibrator read (search.with_refit)
        boosters, weights = found.fold_boosters, found.fold_weights
        rounds: list[int | None] = list(found.fold_rounds)
        w = found.refit_weight
        if w:
            boosters = [*boosters, _refit(found.params, Xm[fit_rows], y[fit_rows], cat_idx, found.rounds)]
            rounds, weights = [*rounds, None], [(1 - w) * v for v in weights] + [w]
        booster = average(boosters, rounds, weights)
    else:
        booster = _refit(found.params, Xm[fit_rows], y[fit_rows], cat_idx, found.rounds)
    linear = LinearPart(tuple(cat_idx), seed=seed).fit(Xm[fit_rows], y[fit_rows]) if found.blend else None
    value_feature = conf.value.value_feature if conf.value.value_feature in pre.features_ else None
    vcol = pre.features_.index(value_feature) if value_feature else None
    tiers = fit_tiers(conf, p_held, Xm[held, vcol] if vcol is not None else None)
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
        reference={},
        linear=linear,
        blend=found.blend,
    )
    Xtr = Xm[split.train]
    model.reference = reference(Xtr, pre.features_, pre.categorical_, model.predict_matrix(Xtr))
    ev: Evaluation = evaluate(model, conf, X, Xm, y, split, rows.label_value, rows.segments, seed)
    source = rows.X if rows.source is None else rows.source
    holdout = source.iloc[split.test].reset_index(drop=True).assign(label=y[split.test])
    if rows.label_value is not None:
        holdout["label_value"] = rows.label_value[split.test]
    tables = ev.tables | ({"search": found.trials} if searching else {})
    params = found.params | {
        "search_seconds": round(search_seconds, 1),
        "search_candidates": len(found.trials),
        "search_folds": len(folds),
        "cv_auc": round(float(found.trials["cv_auc"].max()), 4),
        "blend_linear_weight": found.blend,
        "final_trees": booster.num_trees(),
        "ensemble_members": int(found.trials["members"].sum()),
        "refit": conf.model.refit,
        "refit_weight": found.refit_weight,
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
        tables,
        ev.images,
        flags,
        [(d.column, d.reason) for d in pre.dropped_],
        holdout,
        params,
        split,
        briers,
        ev.predictions,
        y[split.test],
    )
