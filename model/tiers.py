"""Tiers: calibrated probability, expected value, or capacity (top share), fitted on validation data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from leadscore.config import MotionConfig, Value


@dataclass
class TierPolicy:
    """Thresholds are stored with the model version; the last tier catches the rest."""

    method: str
    names: list[str]
    thresholds: list[float]  # one per tier but the last, descending
    value: dict = field(default_factory=dict)

    def quantity(self, p: np.ndarray, row_values: np.ndarray | None = None) -> np.ndarray:
        if self.method == "expected_value":
            return expected_value(p, row_values, self.value)
        return np.asarray(p, dtype=np.float64)

    def assign(self, p: np.ndarray, row_values: np.ndarray | None = None) -> np.ndarray:
        q = self.quantity(p, row_values)
        idx = np.full(len(q), len(self.names) - 1)
        for i in reversed(range(len(self.thresholds))):
            idx = np.where(q >= self.thresholds[i], i, idx)
        return np.asarray(self.names, dtype=object)[idx]


def expected_value(p: np.ndarray, row_values: np.ndarray | None, value: dict) -> np.ndarray:
    """Probability × deal value − cost of the sales interaction; a row's own value (e.g. cart) when known."""
    deal = np.full(len(p), float(value.get("deal_value", 0.0)))
    if row_values is not None:
        rv = np.asarray(row_values, dtype=np.float64)
        deal = np.where(np.isfinite(rv) & (rv > 0), rv, deal)
    return np.asarray(p) * deal - float(value.get("cost_of_contact", 0.0))


def fit_tiers(conf: MotionConfig, p_valid: np.ndarray, values_valid: np.ndarray | None) -> TierPolicy:
    value = Value.model_dump(conf.value)
    method = "probability" if conf.tiers.method == "capacity" else conf.tiers.method
    policy = TierPolicy(method, [t.name for t in conf.tiers.levels], [], value)
    q = policy.quantity(p_valid, values_valid)
    thresholds = []
    for level in conf.tiers.levels[:-1]:
        if level.share is not None:
            thresholds.append(float(np.quantile(q, 1 - level.share)) if len(q) else float("inf"))
        elif level.min_probability is not None:
            thresholds.append(level.min_probability)
        elif level.min_expected_value is not None:
            thresholds.append(level.min_expected_value)
        else:
            raise ValueError(f"tier {level.name!r} needs share, min_probability or min_expected_value")
    # Ties at a quantile could invert the order: keep thresholds non-increasing.
    policy.thresholds = list(np.minimum.accumulate(thresholds)) if thresholds else []
    return policy
