"""Exact SHAP contributions for small-tree LightGBM models by table lookup instead of ``pred_contrib`` (the
serving bench times both).

LightGBM's path-dependent TreeSHAP (``pred_contrib=True``) costs O(leaves x depth^2) per tree and row. But in a tree
with k splits a row's contributions depend only on which way it goes at each split: k bits, 2^k patterns. With the
small trees our motion configurations grow (num_leaves 7: k = 6, 64 patterns) every pattern's exact Shapley values
are precomputed once per model; scoring a row is then k comparisons per tree, a k-bit pattern per tree, and a sum
of the at most k values the pattern's table row gives the tree's own features: one compiled loop (numba), the same
for one row and for a thousand.

The Shapley values are those of TreeSHAP's value function: v(S) = sum over leaves of leaf value x product along its
path of 1/0 (the split's feature is in S; the row goes / does not go that way) or the child's share of the node's
training count (feature not in S). Split decisions replicate LightGBM's (missing types None/Zero/NaN, default
direction, categorical bitsets). Parity with ``pred_contrib`` is tested; models with larger trees fall back to it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from math import factorial

import lightgbm as lgb
import numpy as np

MAX_SPLITS = (
    7  # 2^7 patterns per tree (a pattern fits a byte); beyond that the table costs more than it saves
)
ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float32: 1.0000000180025095e-35)
MISSING = {"None": 0, "Zero": 1, "NaN": 2}
ZERO_MISSING = MISSING["Zero"]
NUMERIC, CATEGORICAL, DUMMY = (
    0,
    1,
    2,
)  # split kinds; DUMMY: the unused split slots of a tree with fewer than k


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
        splits.append(
            _Split(
                int(node["split_feature"]),
                float("nan") if cat else float(node["threshold"]),
                cat,
                cats,
                MISSING[node["missing_type"]],
                bool(node["default_left"]),
            )
        )
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
    patterns = np.arange(1 << k)[:, None, None]  # (P, 1, 1)
    subsets = np.arange(1 << n)[None, :, None]  # (1, S, 1)
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
                feat[t, j], missing[t, j], default_left[t, j], dummy[t, j] = (
                    s.feature,
                    s.missing,
                    s.default_left,
                    False,
                )
                if s.categorical:
                    cat_nodes.append((t * feat.shape[1] + j, s.categories))
                else:
                    thr[t, j] = s.threshold
            phi, features, expected = _tree_table(splits, leaves)
            self.bias += expected
            values[t * width : t * width + phi.shape[0], : len(features)] = phi
            tree_features[t, : len(features)] = features
        self.values, self.tree_features = values, tree_features
        # Split j of tree t is decision t * k + j: a tree's splits side by side.
        self.feat, self.thr = feat.ravel(), thr.ravel()
        self.missing, self.default_left = missing.ravel().astype(np.int8), default_left.ravel()
        self.kind = np.where(dummy.ravel(), DUMMY, NUMERIC).astype(np.int8)
        self.cat_row = np.full(self.feat.shape, -1, dtype=np.int64)
        for i, (pos, _) in enumerate(cat_nodes):
            self.kind[pos], self.cat_row[pos] = CATEGORICAL, i
        top = max((max(c) for _, c in cat_nodes if c), default=0) + 2
        self.cat_left = np.zeros((max(len(cat_nodes), 1), top), dtype=bool)  # column top - 1: never in a set
        for i, (_, cats) in enumerate(cat_nodes):
            self.cat_left[i, sorted(cats)] = True
        # Where a split sends a missing value: its default direction (missing type NaN or Zero) or, with no
        # missing type, where 0 goes.
        self.nan_left = np.where(self.missing == MISSING["None"], 0.0 <= self.thr, self.default_left)

    @classmethod
    def from_booster(cls, booster: lgb.Booster) -> TreeTable | None:
        """A table for binary models whose trees have at most MAX_SPLITS splits; None otherwise."""
        dump = booster.dump_model()
        if dump.get("num_tree_per_iteration", 1) != 1 or any(
            t["num_leaves"] - 1 > MAX_SPLITS for t in dump["tree_info"]
        ):
            return None
        return cls(dump)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(rows, features + 1): per-feature SHAP values (log-odds) and the expected value last, like pred_contrib."""
        X = np.asarray(X, dtype=np.float64)
        # One contiguous row of values per feature, |x| <= kZeroThreshold read as 0 (LightGBM's row parser).
        columns = np.where(np.abs(X) <= ZERO, 0.0, X).T.copy()
        out = np.zeros((self.n_features + 1, len(X)))
        _kernel()(
            columns,
            self.feat,
            self.thr,
            self.kind,
            self.missing,
            self.default_left,
            self.nan_left,
            self.cat_row,
            self.cat_left,
            self.values,
            self.tree_features,
            self.n_trees,
            self.k,
            out,
        )
        out[-1] = self.bias
        return out.T


def _rows(
    columns,
    feat,
    thr,
    kind,
    missing,
    default_left,
    nan_left,
    cat_row,
    cat_left,
    values,
    tree_features,
    n_trees,
    k,
    out,
):  # pragma: no cover - compiled by numba (``_kernel``); its results are tested
    """Every row's contributions into ``out`` (features + 1, rows; row F collects unused slots).

    Tree by tree: each split's decision for all rows (as LightGBM takes it) sets one bit of the rows' patterns;
    then each row adds what its pattern's table row gives the tree's features. A tree's splits and table rows
    stay in cache while the rows visit them, and a split's decisions are one branch-free loop over a column.
    """
    n, slots = columns.shape[1], tree_features.shape[1]
    width = 1 << k
    never = cat_left.shape[1] - 1
    pattern = np.empty(n, dtype=np.int64)
    for t in range(n_trees):  # 2-D indexing throughout: a row view would cost a reference count each time
        for r in range(n):
            pattern[r] = 0
        for j in range(k):
            pos = t * slots + j
            f = feat[pos]
            if kind[pos] == NUMERIC and missing[pos] != ZERO_MISSING:
                threshold, nan_goes_left = thr[pos], nan_left[pos]
                for r in range(n):
                    v = columns[f, r]
                    pattern[r] |= ((v <= threshold) | ((v != v) & nan_goes_left)) << j
            elif kind[pos] == NUMERIC:  # missing type Zero: NaN and 0 take the default direction
                threshold, default = thr[pos], default_left[pos]
                for r in range(n):
                    v = columns[f, r]
                    pattern[r] |= (default if (v != v or v == 0.0) else v <= threshold) << j
            elif kind[pos] == CATEGORICAL:  # NaN, negative, unseen or too large: in no set, so right
                c = cat_row[pos]
                for r in range(n):
                    v = columns[f, r]
                    pattern[r] |= cat_left[c, never if (v != v or v < 0 or v >= never) else int(v)] << j
        base = t * width
        for i in range(slots):
            g = tree_features[t, i]
            for r in range(n):
                out[g, r] += values[base + pattern[r], i]


@functools.cache
def _kernel():
    """``_rows`` compiled (once per machine: numba caches it beside this file); it releases the GIL, so the
    service's event loop keeps reading requests while a batch is explained."""
    import numba

    return numba.njit(cache=True, nogil=True)(_rows)
