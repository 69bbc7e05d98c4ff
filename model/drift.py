"""Drift reference and PSI: the training distribution is stored with the model; feedback compares to it."""

from __future__ import annotations

import numpy as np

BINS = 10


def reference(X: np.ndarray, columns: list[str], categorical: list[str], scores: np.ndarray) -> dict:
    """Per-feature bin edges and proportions (numbers: deciles; categories: codes), plus the score's."""
    ref: dict = {"features": {}, "score": _numeric_ref(scores)}
    for j, c in enumerate(columns):
        col = X[:, j]
        ref["features"][c] = _categorical_ref(col) if c in categorical else _numeric_ref(col)
    return ref


def _numeric_ref(v: np.ndarray) -> dict:
    finite = v[np.isfinite(v)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1])) if len(finite) else np.array([])
    return {"kind": "number", "edges": edges.tolist(), "props": _props_numeric(v, edges).tolist()}


def _props_numeric(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    finite = np.isfinite(v)
    counts = np.bincount(np.searchsorted(edges, v[finite], side="right"), minlength=len(edges) + 1).astype(
        float
    )
    counts = np.r_[counts, float((~finite).sum())]  # the last bin: missing
    return counts / max(len(v), 1)


def _categorical_ref(v: np.ndarray) -> dict:
    codes = np.where(np.isfinite(v), v, -1).astype(int)
    levels = sorted(set(codes.tolist()))
    return {"kind": "category", "levels": levels, "props": _props_cat(codes, levels).tolist()}


def _props_cat(codes: np.ndarray, levels: list[int]) -> np.ndarray:
    idx = {lv: i for i, lv in enumerate(levels)}
    counts = np.zeros(len(levels) + 1)
    for c in codes.tolist():
        counts[idx.get(c, len(levels))] += 1
    return counts / max(len(codes), 1)


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index: Σ (a − e) · ln(a / e), with empty bins floored at ``eps``."""
    n = max(len(expected), len(actual))
    e = np.clip(np.r_[expected, np.zeros(n - len(expected))], eps, None)
    a = np.clip(np.r_[actual, np.zeros(n - len(actual))], eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(ref: dict, X: np.ndarray, columns: list[str]) -> dict[str, float]:
    out = {}
    for j, c in enumerate(columns):
        r = ref["features"].get(c)
        if r is None:
            continue
        col = X[:, j]
        if r["kind"] == "number":
            actual = _props_numeric(col, np.asarray(r["edges"]))
        else:
            actual = _props_cat(np.where(np.isfinite(col), col, -1).astype(int), r["levels"])
        out[c] = psi(np.asarray(r["props"]), actual)
    return out


def score_psi(ref: dict, scores: np.ndarray) -> float:
    r = ref["score"]
    return psi(np.asarray(r["props"]), _props_numeric(np.asarray(scores, float), np.asarray(r["edges"])))
