"""Evaluation of a fitted version on the test fold, beside the three peers trained on the same rows: metrics,
tables (deciles, tiers, segments, SHAP importance) and plots — always within the version's motion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.config import MotionConfig
from model import metrics
from model.artifact import LeadScoreModel
from training import baselines, plots
from training.split import Split


@dataclass
class Evaluation:
    metrics: dict[str, dict[str, float]]
    tables: dict[str, pd.DataFrame]
    images: dict[str, bytes]
    predictions: dict[str, np.ndarray]  # per model, on the test rows


def evaluate(
    model: LeadScoreModel,
    conf: MotionConfig,
    X: pd.DataFrame,
    Xm: np.ndarray,
    y: np.ndarray,
    split: Split,
    label_value: np.ndarray | None,
    segments: list[str],
    seed: int,
) -> Evaluation:
    """``X``: the inputs the model was fitted on (``Xm`` as its matrix), ``y`` the labels, all rows."""
    pre = model.preprocessor
    fit_rows, te = np.r_[split.train, split.valid], split.test
    yte, Xte = y[te], Xm[te]
    p = model.predict_matrix(Xte)
    frame_fit, frame_te = pre.frame(X.iloc[fit_rows]), pre.frame(X.iloc[te])
    p_lr = baselines.logistic(frame_fit, y[fit_rows], seed)(frame_te)
    p_nb = baselines.naive_bayes(frame_fit, y[fit_rows])(frame_te)
    cats = [pre.features_.index(c) for c in pre.categorical_]
    p_gbm = baselines.lightgbm_default(Xm[fit_rows], y[fit_rows], cats, seed)(Xte)
    m = {
        "model": metrics.core(yte, p),
        "logistic": metrics.core(yte, p_lr),
        "naive_bayes": metrics.core(yte, p_nb),
        "lightgbm_default": metrics.core(yte, p_gbm),
    }
    m["model"]["auc_gain_vs_best_baseline"] = m["model"]["auc"] - max(
        m["logistic"]["auc"], m["naive_bayes"]["auc"], m["lightgbm_default"]["auc"]
    )
    vcol = model.columns.index(model.value_feature) if model.value_feature else None
    tiers_te = model.tiers.assign(p, Xte[:, vcol] if vcol is not None else None)
    value_te = label_value[te] if label_value is not None else None
    contrib = model.contributions(Xte[:5000], threads=0)[:, :-1]
    mean_abs = pd.Series(np.abs(contrib).mean(0), index=pre.features_)
    tables = {
        "deciles": metrics.by_decile(yte, p),
        "tiers": metrics.by_group(yte, p, tiers_te, value_te).rename(columns={"group": "tier"}),
        "segments": metrics.segments(yte, p, X.iloc[te].reset_index(drop=True), list(segments)),
        "baseline_deciles": metrics.by_decile(yte, p_lr),
        "shap_mean_abs": mean_abs.rename("mean_abs_shap")
        .rename_axis("feature")
        .reset_index()
        .sort_values("mean_abs_shap", ascending=False),
    }
    title = f"{model.name} ({conf.motion})"
    curves = {"model": p, "logistic": p_lr, "naive Bayes": p_nb, "LightGBM default": p_gbm}
    images = {
        "calibration.png": plots.calibration_curve(yte, curves, f"calibration — {title}"),
        "gains.png": plots.gains_chart(yte, curves, title),
        "shap_summary.png": plots.shap_summary(mean_abs, f"SHAP summary — {title}"),
    }
    preds = {"model": p, "logistic": p_lr, "naive_bayes": p_nb, "lightgbm_default": p_gbm}
    return Evaluation(m, tables, images, preds)
