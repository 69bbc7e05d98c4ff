"""Exact SHAP contributions for small-tree LightGBM models by table lookup, ~10-20x faster than ``pred_contrib``.

LightGBM's path-dependent TreeSHAP (``pred_contrib=True``) costs O(leaves x depth^2) per tree and row. But in a tree
with k splits a row's contributions depend only on which way it goes at each split: k bits, 2^k patterns. With the
small trees our motion configurations grow (num_leaves 7: k = 6, 64 patterns) every pattern's exact Shapley values
are precomputed once per model; scoring a row is then k comparisons per tree, a k-bit pattern per tree, and a sum
of the table rows the patterns pick (for a few rows, a gather of the at most k values each tree gives its own
features; for many, one sparse product).

The Shapley values are those of TreeSHAP's value function: v(S) = sum over leaves of leaf value x product along its
path of 1/0 (the split's feature is in S; the row goes / does not go that way) or the child's share of the node's
training count (feature not in S). Split decisions replicate LightGBM's (missing types None/Zero/NaN, default
direction, categorical bitsets). Parity with ``pred_contrib`` is tested; models with larger trees fall back to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import lightgbm as lgb
import numpy as np
from scipy import sparse

MAX_SPLITS = 7        # 2^7 patterns per tree (a pattern fits a byte); beyond that the table costs more than it saves
ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float32: 1.0000000180025095e-35)
MISSING = {"None": 0, "Zero": 1, "NaN": 2}
CHUNK = 256           # rows per pass
FEW = 16              # up to this many rows, gather each tree's own values; beyond, one sparse product


@dataclass
class _Split:
    feature: int
    threshold: float
    categorical: bool
    categories: frozenset[int]
    missing: int
    default_left: bool


def _parse(tree: dict) -> tuple[list[_Split], list[tuple[float, float, list[tuple[int, int, float]]]]]:
    """Splits (numbered 0..k-1) and leaves as (value, count, path of (split, went_left, child share))."""
    splits: list[_Split] = []
    leaves: list[tuple[float, float, list[tuple[int, int, float]]]] = []

    def count(node: dict) -> float:
        return float(node["internal_count"] if "split_index" in node else node.get("leaf_count", 0))

    def walk(node: dict, path: list[tuple[int, int, float]]) -> None:
        if "split_index" not in node:
            leaves.append((float(node["leaf_value"]), count(node), path))
            return
        j = len(splits)
        cat = node["decision_type"] == "=="
        cats = frozenset(int(c) for c in str(node["threshold"]).split("||")) if cat else frozenset()
        splits.append(_Split(int(node["split_feature"]), float("nan") if cat else float(node["threshold"]), cat,
                             cats, MISSING[node["missing_type"]], bool(node["default_left"])))
        total = count(node) or 1.0
        walk(node["left_child"], [*path, (j, 1, count(node["left_child"]) / total)])
        walk(node["right_child"], [*path, (j, 0, count(node["right_child"]) / total)])

    walk(tree["tree_structure"], [])
    return splits, leaves


def _shapley_matrix(n: int) -> np.ndarray:
    """M (2^n x n) with phi = v @ M: phi_i = sum over S without i of |S|!(n-|S|-1)!/n! (v(S+i) - v(S))."""
    m = np.zeros((1 << n, n))
    for s in range(1 << n):
        size = bin(s).count("1")
        for i in range(n):
            if s >> i & 1:
                m[s, i] += factorial(size - 1) * factorial(n - size) / factorial(n)
            else:
                m[s, i] -= factorial(size) * factorial(n - size - 1) / factorial(n)
    return m


def _tree_table(splits: list[_Split], leaves: list) -> tuple[np.ndarray, list[int], float]:
    """phi (2^k x |U|) for every split-direction pattern, the tree's features U, and its expected value."""
    k = len(splits)
    features = sorted({s.feature for s in splits})
    n = len(features)
    position = {f: i for i, f in enumerate(features)}
    patterns = np.arange(1 << k)[:, None, None]                 # (P, 1, 1)
    subsets = np.arange(1 << n)[None, :, None]                  # (1, S, 1)
    v = np.zeros((1 << k, 1 << n))
    for value, _, path in leaves:
        weight = np.ones((1 << k, 1 << n, 1))
        for j, went_left, share in path:
            in_s = (subsets >> position[splits[j].feature]) & 1
            follows = ((patterns >> j) & 1) == went_left
            weight = weight * np.where(in_s == 1, follows, share)
        v += value * weight[..., 0]
    return v @ _shapley_matrix(n), features, float(v[0, 0])


class TreeTable:
    """Precomputed contributions for every tree of a binary LightGBM model; ``contributions`` mirrors pred_contrib."""

    def __init__(self, dump: dict):
        trees = [_parse(t) for t in dump["tree_info"]]
        self.n_features = int(dump["max_feature_idx"]) + 1
        self.k = max((len(s) for s, _ in trees), default=0)
        self.n_trees = len(trees)
        width = 1 << self.k
        feat = np.zeros((self.n_trees, max(self.k, 1)), dtype=np.int64)
        thr = np.full_like(feat, np.inf, dtype=np.float64)
        missing = np.zeros_like(feat)
        default_left = np.zeros(feat.shape, dtype=bool)
        dummy = np.ones(feat.shape, dtype=bool)
        cat_nodes: list[tuple[int, frozenset[int]]] = []
        # values[t * width + pattern, i]: what tree t gives its i-th feature, tree_features[t, i], for a pattern;
        # unused slots point at a spare column n_features (dropped) with value 0.
        values = np.zeros((self.n_trees * width, feat.shape[1]))
        tree_features = np.full(feat.shape, self.n_features, dtype=np.int64)
        self.bias = 0.0
        for t, (splits, leaves) in enumerate(trees):
            for j, s in enumerate(splits):
                feat[t, j], missing[t, j], default_left[t, j], dummy[t, j] = s.feature, s.missing, s.default_left, False
                if s.categorical:
                    cat_nodes.append((j * self.n_trees + t, s.categories))
                else:
                    thr[t, j] = s.threshold
            phi, features, expected = _tree_table(splits, leaves)
            self.bias += expected
            values[t * width:t * width + phi.shape[0], :len(features)] = phi
            tree_features[t, :len(features)] = features
        self.values, self.tree_features = values, tree_features
        rows = np.repeat(np.arange(values.shape[0]), values.shape[1])
        cols = np.repeat(tree_features, width, axis=0).ravel()
        keep = cols < self.n_features
        self.table = sparse.csr_matrix((values.ravel()[keep], (rows[keep], cols[keep])),
                                       shape=(values.shape[0], self.n_features))
        # Split j of tree t is decision j * n_trees + t: each bit of the patterns is one contiguous run.
        self.feat, self.thr = feat.T.ravel(), thr.T.ravel()
        self.missing, self.default_left, self.dummy = missing.T.ravel(), default_left.T.ravel(), dummy.T.ravel()
        self.cat_pos = np.array([p for p, _ in cat_nodes], dtype=np.int64)
        top = max((max(c) for _, c in cat_nodes if c), default=0) + 2
        self.cat_left = np.zeros((len(cat_nodes), top), dtype=bool)
        for i, (_, cats) in enumerate(cat_nodes):
            self.cat_left[i, sorted(cats)] = True
        # Where a split sends a missing value: its default direction (missing type NaN or Zero) or, with no
        # missing type, where 0 goes. Rows [0, F) of the gathered matrix keep NaN, rows [F, 2F) hold -inf instead.
        nan_left = np.where(self.missing == MISSING["None"], 0.0 <= self.thr, self.default_left)
        self.src = self.feat + self.n_features * nan_left
        self.zero_pos = np.flatnonzero(self.missing == MISSING["Zero"])
        self.dummy_pos = np.flatnonzero(self.dummy)
        # Binned decisions for many rows: with U_f a feature's sorted distinct thresholds and b = #(U_f < x),
        # x <= U_f[r] exactly when b <= r, so each decision compares small integers instead of float64s.
        numeric = ~self.dummy
        numeric[self.cat_pos] = False
        self.bounds = [np.unique(self.thr[numeric & (self.feat == f)]) for f in range(self.n_features)]
        self.rank = np.full(self.thr.shape, -1, dtype=np.int32)   # -1: never left (categorical, dummy: set apart)
        self.rank[numeric] = [np.searchsorted(self.bounds[f], t) for f, t in
                              zip(self.feat[numeric].tolist(), self.thr[numeric].tolist(), strict=True)]
        self.offsets = np.arange(self.n_trees, dtype=np.int64) * width

    @classmethod
    def from_booster(cls, booster: lgb.Booster) -> TreeTable | None:
        """A table for binary models whose trees have at most MAX_SPLITS splits; None otherwise."""
        dump = booster.dump_model()
        if dump.get("num_tree_per_iteration", 1) != 1 or any(
                t["num_leaves"] - 1 > MAX_SPLITS for t in dump["tree_info"]):
            return None
        return cls(dump)

    def go_left(self, X: np.ndarray) -> np.ndarray:
        """(rows, k x trees) split decisions, as LightGBM takes them (split j of tree t at j * trees + t).

        A missing value goes where the split sends it (its default direction, or where 0 goes when the split has
        no missing type); substituting -inf (goes left) or keeping NaN (compares false: right) per split turns
        every numerical decision into one gather and one comparison.
        """
        if len(X) > FEW:
            left = np.take(self._bins(X), self.src, axis=1) <= self.rank
        else:
            nan = np.isnan(X)
            left = np.take(np.concatenate([X, np.where(nan, -np.inf, X)], axis=1), self.src, axis=1) <= self.thr
        if self.zero_pos.size:
            z = X[:, self.feat[self.zero_pos]]
            zero = np.abs(np.where(np.isnan(z), 0.0, z)) <= ZERO
            left[:, self.zero_pos] = np.where(zero, self.default_left[self.zero_pos], left[:, self.zero_pos])
        if self.cat_pos.size:
            c = X[:, self.feat[self.cat_pos]]
            ok = ~np.isnan(c) & (c >= 0)
            code = np.where(ok, c, -1).astype(np.int64)
            code[(code < 0) | (code >= self.cat_left.shape[1])] = self.cat_left.shape[1] - 1  # never in a set
            left[:, self.cat_pos] = self.cat_left[np.arange(self.cat_pos.size), code]
        if self.dummy_pos.size:
            left[:, self.dummy_pos] = False
        return left

    def _bins(self, X: np.ndarray) -> np.ndarray:
        """(rows, 2F) threshold ranks: column f sends NaN right (above every threshold), column F + f left (0)."""
        f_ = self.n_features
        b = np.empty((len(X), 2 * f_), dtype=np.int32)
        for f, bounds in enumerate(self.bounds):
            b[:, f] = np.searchsorted(bounds, X[:, f])
        nan = np.isnan(X)
        b[:, f_:] = np.where(nan, 0, b[:, :f_])
        b[:, :f_][nan] = np.iinfo(np.int32).max
        return b

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(rows, features + 1): per-feature SHAP values (log-odds) and the expected value last, like pred_contrib."""
        X = np.asarray(X, dtype=np.float64)
        X = np.where(np.abs(X) <= ZERO, 0.0, X)  # LightGBM reads |x| <= kZeroThreshold as 0 (its row parser)
        out = np.empty((len(X), self.n_features + 1))
        out[:, -1] = self.bias
        for s in range(0, len(X), CHUNK):  # chunks keep the (splits x rows) decisions in cache
            out[s:s + CHUNK, :-1] = self._phi(X[s:s + CHUNK])
        return out

    def _phi(self, X: np.ndarray) -> np.ndarray:
        n, f = len(X), self.n_features
        left = self.go_left(X).reshape(n, -1, self.n_trees).view(np.uint8)
        pattern = left[:, 0].copy()                                        # (rows, trees): split j is bit j
        for j in range(1, left.shape[1]):
            pattern |= left[:, j] << j
        idx = pattern + self.offsets                                       # (rows, trees): one table row each
        if n <= FEW:                                                       # gather (rows, trees, k) and sum
            where = np.arange(n)[:, None, None] * (f + 1) + self.tree_features
            return np.bincount(where.ravel(), self.values[idx].ravel(), n * (f + 1)).reshape(n, f + 1)[:, :f]
        pick = sparse.csr_matrix((np.ones(idx.size), idx.ravel(), np.arange(0, idx.size + 1, self.n_trees)),
                                 shape=(n, self.table.shape[0]))
        return (pick @ self.table).toarray()
