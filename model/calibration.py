"""Calibration on a held-out fold: isotonic or sigmoid (Platt), whichever has the lower cross-fitted Brier.

The isotonic map is centred (Oron & Flournoy's centred isotonic regression): each flat block of the fitted step
function becomes one point at the mean raw score of its samples, joined by straight lines. The map is then
strictly increasing between the outermost blocks' centres, so calibration keeps the model's ranking (a step
function ties every lead in a block and costs AUC) with the same block means.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class Calibrator:
    """Maps raw model probabilities to calibrated ones; ``method`` is ``isotonic`` or ``sigmoid``."""

    def __init__(self, method: str):
        if method not in ("isotonic", "sigmoid"):
            raise ValueError(f"unknown calibration method {method!r}")
        self.method = method

    def fit(self, raw: np.ndarray, y: np.ndarray) -> Calibrator:
        if self.method == "isotonic":
            fitted = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y).predict(raw)
            self.y_, block = np.unique(fitted, return_inverse=True)  # block levels, strictly increasing
            self.x_ = np.bincount(block, raw) / np.bincount(block)  # each block's centre
        else:
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw).reshape(-1, 1), y)
            self.a_, self.b_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def __setstate__(self, state: dict) -> None:
        # An artifact saved before the centred map holds the step function (``model_``): it keeps predicting
        # exactly what it did, through its own breakpoints.
        if "model_" in state:
            step = state.pop("model_")
            state["x_"], state["y_"] = step.X_thresholds_, step.y_thresholds_
        self.__dict__.update(state)

    def predict(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(raw, self.x_, self.y_)
        return 1.0 / (1.0 + np.exp(-(self.a_ * _logit(raw) + self.b_)))


def choose_calibrator(raw: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[Calibrator, dict[str, float]]:
    """Cross-fit both methods on the calibration fold (2 folds), keep the lower Brier, refit on all of it."""
    briers: dict[str, float] = {}
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    for method in ("isotonic", "sigmoid"):
        errs = []
        for a, b in folds.split(raw, y):
            cal = Calibrator(method).fit(raw[a], y[a])
            errs.append(np.mean((cal.predict(raw[b]) - y[b]) ** 2))
        briers[method] = float(np.mean(errs))
    best = min(briers, key=briers.__getitem__)
    return Calibrator(best).fit(raw, y), briers
