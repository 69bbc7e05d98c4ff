"""Evaluation metrics, always computed within one motion (never across motions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def _bin_of(p: np.ndarray, bins: int) -> np.ndarray:
    """Each score's equal-width bin (1.0 in the last); a NaN score falls in none (negative)."""
    return np.minimum((p * bins).astype(int), bins - 1)


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |mean predicted − observed| per equal-width bin, weighted by count (a bin's
    count times its gap is the gap of its sums)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    idx = _bin_of(p, bins)
    ok = idx >= 0
    gaps = np.bincount(idx[ok], p[ok], bins) - np.bincount(idx[ok], y[ok], bins)
    return float(np.abs(gaps).sum() / max(len(y), 1))


def _ece_null(p: np.ndarray, bins: int, sims: int, seed: int) -> np.ndarray:
    """``sims`` ECEs of a perfectly calibrated model with scores ``p``: labels drawn as Bernoulli(p), binned as
    ``ece`` bins them."""
    p = np.asarray(p, float)
    if not len(p):
        return np.zeros(1)
    idx = _bin_of(p, bins)
    ok = idx >= 0
    idx, q = idx[ok], p[ok]
    sum_p = np.bincount(idx, q, bins)
    rng = np.random.default_rng(seed)
    return np.array(
        [np.abs(sum_p - np.bincount(idx, rng.random(len(q)) < q, bins)).sum() / len(p) for _ in range(sims)]
    )


def ece_noise_floor(p: np.ndarray, bins: int = 10, sims: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these scores would show on this many rows, on average: labels
    drawn as Bernoulli(p). A test fold's ECE near this floor is as good as the fold can tell."""
    return float(_ece_null(p, bins, sims, seed).mean())


def calibration_decayed(
    y: np.ndarray, p: np.ndarray, bound: float, level: float = 0.95
) -> tuple[bool, float]:
    """Whether served scores have lost their calibration on these outcomes, and the ECE limit that says so: the
    bound, or — on few outcomes, where a perfectly calibrated model's ECE alone passes the bound — the ECE such a
    model stays below ``level`` of the time on these scores, whichever is higher. So 400 outcomes whose scores are
    right are not called decayed for their noise (0.05 is about what they show), and many are held to the bound."""
    limit = max(bound, float(np.quantile(_ece_null(p, 10, 400, 0), level)))
    return ece(y, p) > limit, limit


def auc_drop_limit(
    trained_auc: float, positives: int, negatives: int, bound: float, level: float = 0.95
) -> float:
    """How far the AUC on these outcomes may fall below the AUC at training before the ranking counts as weakened:
    the bound, or — on few outcomes — the drop a model still ranking as it did at training stays within ``level``
    of the time (one-sided, Hanley and McNeil's standard error at the trained AUC), whichever is larger. On 300
    outcomes half converted, a 0.80 model's AUC alone falls 0.03 short about one time in eight."""
    a = float(trained_auc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) / max(
        positives * negatives, 1
    )
    return max(bound, float(stats.norm.ppf(level) * np.sqrt(max(var, 0.0))))


def base_rate_gap(y: np.ndarray, p: np.ndarray) -> float:
    """Mean predicted minus observed rate ("calibration in the large"). |gap| is a floor under ``ece``: the bins'
    gaps are averaged with the same weights, so their absolute values cannot sum to less. When the base rate
    moves between the period a model was fitted on and the period it is tested on, no model fitted before can
    have an ECE below that shift."""
    return float(np.mean(np.asarray(p, float)) - np.mean(np.asarray(y, float))) if len(y) else float("nan")


def core(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return {
            "n": float(len(y)),
            "positives": float(y.sum()),
            "auc": float("nan"),
            "pr_auc": float("nan"),
            "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
            "ece": ece(y, p),
        }
    return {
        "n": float(len(y)),
        "positives": float(y.sum()),
        "auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "ece": ece(y, p),
    }


def auc_difference_ci(
    y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """AUC(a) − AUC(b) on the same rows, with a paired bootstrap interval: (difference, low, high).

    Both models are scored on every resample of the rows, so the interval reflects their difference, not the
    noise each has alone. An interval that contains 0 means the rows cannot tell the two models apart.
    """
    y, p_a, p_b = np.asarray(y), np.asarray(p_a, float), np.asarray(p_b, float)
    if len(np.unique(y)) < 2:
        raise ValueError("the AUC difference needs both classes in y")
    diff = float(roc_auc_score(y, p_a) - roc_auc_score(y, p_b))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() != y[i].max():
            boots.append(roc_auc_score(y[i], p_a[i]) - roc_auc_score(y[i], p_b[i]))
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return diff, float(low), float(high)


def by_decile(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """Conversion and lift by score decile (decile 1 = the top 10%)."""
    order = np.argsort(-np.asarray(p), kind="stable")
    dec = np.empty(len(p), dtype=int)
    dec[order] = np.arange(len(p)) * 10 // max(len(p), 1) + 1
    df = pd.DataFrame({"decile": dec, "y": y, "p": p})
    g = df.groupby("decile").agg(
        n=("y", "size"), conversions=("y", "sum"), conversion=("y", "mean"), mean_score=("p", "mean")
    )
    base = float(np.mean(y)) if len(y) else 0.0
    g["lift"] = g["conversion"] / base if base > 0 else np.nan
    g["cumulative_gain"] = g["conversions"].cumsum() / max(float(np.sum(y)), 1.0)
    return g.reset_index()


def by_group(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray, value: np.ndarray | None = None
) -> pd.DataFrame:
    """Conversion, lift, calibration (and revenue) per group — tiers or segments."""
    df = pd.DataFrame({"group": groups, "y": y, "p": p, "value": value if value is not None else 0.0})
    base = float(np.mean(y)) if len(y) else 0.0
    g = df.groupby("group", dropna=False).agg(
        n=("y", "size"),
        conversions=("y", "sum"),
        conversion=("y", "mean"),
        mean_score=("p", "mean"),
        revenue=("value", "sum"),
    )
    g["lift"] = g["conversion"] / base if base > 0 else np.nan
    g["share"] = g["n"] / max(len(y), 1)
    return g.reset_index()


def segments(
    y: np.ndarray, p: np.ndarray, frame: pd.DataFrame, columns: list[str], min_n: int = 50
) -> pd.DataFrame:
    """AUC, calibration and conversion per value of each segment column (within the motion)."""
    rows = []
    for col in columns:
        if col not in frame.columns:
            continue
        vals = frame[col].astype("str").where(frame[col].notna(), "(missing)").to_numpy()
        for v in pd.unique(vals):
            m = vals == v
            if m.sum() < min_n:
                continue
            rows.append({"segment": col, "value": v} | core(y[m], p[m]))
    return pd.DataFrame(rows)
