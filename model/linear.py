"""The linear half of a blended model: a ridge logistic regression on the model matrix, stored as arrays.

It reads the same float matrix as the booster (numbers as they are, categories as fixed codes, NaN missing), so
the preprocessing inside the model serves both. Each number has a straight term (clipped to the training 1st–99th
percentiles, median-filled, standardised), a missing indicator and a step per quantile bin of its training values
(``bins``; 0: the straight term alone), so a curved effect — a few minutes on the site are worth far more than
none, hours little more than one — is not forced onto a line. Each category level (and "missing") has a weight
of its own. Every input's terms depend on that input alone and are centred on their training mean, so the
per-input contributions plus the base (last column) sum to the log-odds exactly: blended with the booster's SHAP
values in log-odds space, reasons stay exact.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression


def _one_hot(slots: np.ndarray, size: int, present: np.ndarray | None = None) -> sparse.csr_matrix:
    n = len(slots)
    ones = np.ones(n) if present is None else present.astype(np.float64)
    return sparse.csr_matrix((ones, (np.arange(n), slots)), shape=(n, size))


class LinearPart(BaseEstimator):
    """``fit(X, y)`` on the model matrix; ``logit`` and ``contributions`` for any matrix of the same columns."""

    def __init__(self, categorical: tuple[int, ...] = (), C: float = 1.0, seed: int = 0, bins: int = 10):
        self.categorical = categorical
        self.C = C
        self.seed = seed
        self.bins = bins

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearPart:
        n, f = X.shape
        cats = set(self.categorical)
        self.numeric_ = np.array([j for j in range(f) if j not in cats], dtype=np.int64)
        self.cats_ = np.array(sorted(cats), dtype=np.int64)
        Xn = X[:, self.numeric_]
        with np.errstate(all="ignore"):
            self.lo_ = np.nan_to_num(np.nanpercentile(Xn, 1, axis=0)) if len(Xn.T) else np.zeros(0)
            self.hi_ = np.nan_to_num(np.nanpercentile(Xn, 99, axis=0)) if len(Xn.T) else np.zeros(0)
            clipped = np.clip(Xn, self.lo_, self.hi_)
            self.median_ = np.nan_to_num(np.nanmedian(clipped, axis=0)) if len(Xn.T) else np.zeros(0)
        filled = np.where(np.isnan(clipped), self.median_, clipped)
        self.mu_, sd = filled.mean(0), filled.std(0)
        self.sd_ = np.where(sd > 0, sd, 1.0)
        self.edges_ = [_edges(Xn[:, i], self.bins) for i in range(Xn.shape[1])]
        self.sizes_ = np.array([int(np.nanmax(X[:, j], initial=-1)) + 2 for j in self.cats_], dtype=np.int64)
        lr = LogisticRegression(C=self.C, max_iter=3000, random_state=self.seed)
        lr.fit(self._design(X), y)
        w = lr.coef_[0]
        k = len(self.numeric_)
        self.w_value_, self.w_missing_ = w[:k], w[k : 2 * k]
        steps = np.r_[0, np.cumsum([len(e) + 1 for e in self.edges_])].astype(np.int64) + 2 * k
        self.w_bins_ = [w[a:b] for a, b in zip(steps[:-1], steps[1:], strict=True)]
        bounds = np.r_[0, np.cumsum(self.sizes_)] + steps[-1]
        self.w_levels_ = [w[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.intercept_ = float(lr.intercept_[0])
        self.n_features_ = f
        terms = self._terms(X)
        self.centre_ = terms.mean(0)  # each input's mean term on the training rows
        return self

    def __setstate__(self, state: dict) -> None:
        """A linear half pickled before numbers had steps reads them as flat (no edges, a zero step)."""
        n = len(state.get("numeric_", ()))
        state.setdefault("bins", 0)
        state.setdefault("edges_", [np.zeros(0)] * n)
        state.setdefault("w_bins_", [np.zeros(1)] * n)
        self.__dict__.update(state)

    def _slots(self, X: np.ndarray, i: int) -> np.ndarray:
        """Category column i as slots: 0 for missing (and levels beyond the training codes), code + 1 else."""
        codes = X[:, self.cats_[i]]
        slot = np.where(np.isnan(codes), -1, codes).astype(np.int64) + 1
        return np.where((slot < 0) | (slot >= self.sizes_[i]), 0, slot)

    def _bin(self, X: np.ndarray, i: int) -> np.ndarray:
        """Number column i's quantile bin (a missing value's is 0, and its step is switched off)."""
        v = X[:, self.numeric_[i]]
        return np.searchsorted(self.edges_[i], np.where(np.isnan(v), -np.inf, v), side="right")

    def _numbers(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = X[:, self.numeric_]
        missing = np.isnan(raw)
        z = (np.where(missing, self.median_, np.clip(raw, self.lo_, self.hi_)) - self.mu_) / self.sd_
        return z, missing.astype(np.float64)

    def _design(self, X: np.ndarray) -> sparse.csr_matrix:
        z, missing = self._numbers(X)
        blocks = [sparse.csr_matrix(z), sparse.csr_matrix(missing)]
        blocks += [
            _one_hot(self._bin(X, i), len(e) + 1, missing[:, i] == 0) for i, e in enumerate(self.edges_)
        ]
        blocks += [_one_hot(self._slots(X, i), size) for i, size in enumerate(self.sizes_)]
        return sparse.hstack(blocks, format="csr")

    def _terms(self, X: np.ndarray) -> np.ndarray:
        """Each input's term in the log-odds, uncentred, in the matrix's column order."""
        out = np.zeros((len(X), self.n_features_))
        z, missing = self._numbers(X)
        steps = np.column_stack(
            [np.where(missing[:, i] > 0, 0.0, w[self._bin(X, i)]) for i, w in enumerate(self.w_bins_)]
        ) if len(self.w_bins_) else np.zeros_like(z)  # fmt: skip
        out[:, self.numeric_] = z * self.w_value_ + missing * self.w_missing_ + steps
        for i, j in enumerate(self.cats_):
            out[:, j] = self.w_levels_[i][self._slots(X, i)]
        return out

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-input contributions (log-odds, centred on training) and the base last; rows sum to ``logit``."""
        terms = self._terms(X) - self.centre_
        base = self.intercept_ + float(self.centre_.sum())
        return np.hstack([terms, np.full((len(X), 1), base)])

    def logit(self, X: np.ndarray) -> np.ndarray:
        return self._terms(X).sum(axis=1) + self.intercept_


def _edges(values: np.ndarray, bins: int) -> np.ndarray:
    """The inner quantile edges of a number's training values (none when it has no values or ``bins`` < 2)."""
    seen = values[~np.isnan(values)]
    if bins < 2 or not len(seen):
        return np.zeros(0)
    return np.unique(np.quantile(seen, np.linspace(0, 1, bins + 1)[1:-1]))
