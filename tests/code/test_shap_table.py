"""The tabulated TreeSHAP equals LightGBM's pred_contrib: every split kind, missing values, unseen categories."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from model.shap_table import CATEGORICAL, MISSING, TreeTable


def _data(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.normal(size=n),  # numeric
            rng.integers(0, 12, n).astype(float),  # categorical codes
            rng.exponential(size=n),  # numeric with many missing
            rng.choice([0.0, 1.0, 2.0], n),  # zero-heavy (missing type Zero when zero_as_missing)
            rng.normal(size=n),  # noise
        ]
    )
    logit = X[:, 0] + np.isin(X[:, 1], [1, 3, 7]) * 1.5 - 0.7 * X[:, 2] + 0.5 * X[:, 3]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X[rng.random(n) < 0.3, 2] = np.nan
    X[rng.random(n) < 0.05, 0] = np.nan
    X[rng.random(n) < 0.05, 1] = np.nan
    return X, y


def _probe(X: np.ndarray) -> np.ndarray:
    """Training rows plus what training never saw: unseen, negative and fractional codes, NaN everywhere, zeros."""
    odd = X[:200].copy()
    odd[:50, 1] = 40.0
    odd[50:100, 1] = -1.0
    odd[100:150] = np.nan
    odd[150:200, 3] = 0.0
    odd[150:200, 0] = 0.0
    return np.vstack([X, odd])


@pytest.mark.parametrize(
    "params",
    [
        {"num_leaves": 7},
        {"num_leaves": 8, "zero_as_missing": True},
        {"num_leaves": 4, "use_missing": False},
        {"num_leaves": 7, "min_data_in_leaf": 1500},  # some trees cannot split: single-leaf trees
    ],
)
def test_contributions_equal_pred_contrib(params):
    X, y = _data()
    booster = lgb.train(
        {
            "objective": "binary",
            "verbose": -1,
            "learning_rate": 0.1,
            "min_data_per_group": 20,
            "cat_smooth": 1,
            **params,
        },
        lgb.Dataset(X, y, categorical_feature=[1]),
        num_boost_round=60,
    )
    table = TreeTable.from_booster(booster)
    assert table is not None and (table.kind == CATEGORICAL).any()  # categorical splits are exercised
    assert (table.missing == MISSING["Zero"]).any() if params.get("zero_as_missing") else True
    probe = _probe(X)
    # Values exactly on a split's threshold, infinities and values within LightGBM's zero threshold: the
    # decisions must agree with LightGBM's at the boundary too.
    edge = probe[:300].copy()
    for j, (f, thr) in enumerate(zip(table.feat.tolist(), table.thr.tolist(), strict=True)):
        if np.isfinite(thr):
            edge[j % 300, f] = thr
    edge[250:275, 0], edge[275:300, 2] = np.inf, -np.inf
    edge[200:225, 3], edge[225:250, 0] = 1e-36, -1e-36
    probe = np.vstack([probe, edge])
    ref = booster.predict(probe, pred_contrib=True)
    got = table.contributions(probe)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.sum(axis=1), booster.predict(probe, raw_score=True), atol=1e-9)
    for i, n in (
        (0, 1),
        (4001, 1),
        (len(probe) - 1, 1),
        (100, 16),
        (len(probe) - 300, 16),
    ):  # a row alone: the same
        np.testing.assert_allclose(table.contributions(probe[i : i + n]), ref[i : i + n], atol=1e-9)
    strided = np.asfortranarray(probe[::3])  # any memory layout
    np.testing.assert_allclose(table.contributions(strided), ref[::3], atol=1e-9)


def test_large_trees_fall_back_to_lightgbm():
    X, y = _data(1000)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 31, "min_data_in_leaf": 5},
        lgb.Dataset(X, y),
        num_boost_round=5,
    )
    assert TreeTable.from_booster(booster) is None
    # A batch process computes the fallback on every core (``contributions(X, threads=0)``): the same values.
    one = booster.predict(X, pred_contrib=True, num_threads=1)
    assert np.array_equal(booster.predict(X, pred_contrib=True, num_threads=0), one)
