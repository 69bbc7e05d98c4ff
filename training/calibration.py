"""Calibration on a held-out fold: isotonic or sigmoid (Platt), whichever has the lower cross-fitted Brier."""

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
            self.model_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        else:
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw).reshape(-1, 1), y)
            self.a_, self.b_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if self.method == "isotonic":
            # np.interp on the fitted step function: same values as IsotonicRegression, a fraction of the cost.
            m = self.model_
            return np.interp(raw, m.X_thresholds_, m.y_thresholds_)
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
    best = min(briers, key=briers.get)
    return Calibrator(best).fit(raw, y), briers
