"""The model search and the blend: budget and order, out-of-fold rows only, and a blended model whose reasons
still add up to its score."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from leadscore.config import load_config
from model.ensemble import average
from model.linear import LinearPart
from training.fit import TrainingRows, _lgb_params, fit_and_evaluate
from training.search import Trial, candidates, choose_blend, folds_for, search, select, with_refit


def _data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A linear signal in x0 and a level effect in the category column 2 (codes 0..5, some missing)."""
    rng = np.random.default_rng(seed)
    X = np.c_[rng.normal(size=n), rng.normal(size=n), rng.integers(0, 6, n).astype(float)]
    X[rng.random(n) < 0.1, 1] = np.nan
    X[rng.random(n) < 0.05, 2] = np.nan
    z = 1.5 * X[:, 0] + np.nan_to_num(X[:, 2] - 2.5) * 0.4
    return X, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int8)


def test_linear_contributions_sum_to_its_log_odds_and_match_a_plain_logistic_regression():
    X, y = _data()
    lin = LinearPart((2,)).fit(X, y)
    c = lin.contributions(X)
    assert c.shape == (len(X), 4)
    np.testing.assert_allclose(c.sum(1), lin.logit(X), atol=1e-9)
    np.testing.assert_allclose(c[:, :-1].mean(0), 0, atol=1e-9)  # centred on the training rows
    p = 1 / (1 + np.exp(-lin.logit(X)))
    ref = LogisticRegression(max_iter=2000).fit(lin._design(X), y).predict_proba(lin._design(X))[:, 1]
    np.testing.assert_allclose(p, ref, atol=1e-6)
    assert roc_auc_score(y, p) > 0.75
    unseen = X[:3].copy()
    unseen[:, 2] = [99, -5, np.nan]  # codes it never saw read as missing, not as an error
    assert np.isfinite(lin.logit(unseen)).all()


def test_a_curved_effect_is_read_by_the_steps_and_the_contributions_still_sum_to_the_log_odds():
    rng = np.random.default_rng(3)
    X = np.c_[rng.normal(size=4000), rng.integers(0, 3, 4000).astype(float)]
    X[rng.random(4000) < 0.1, 0] = np.nan
    z = 2.0 * np.abs(np.nan_to_num(X[:, 0])) - 1.5  # a U: a line through it reads nothing
    y = (rng.random(4000) < 1 / (1 + np.exp(-z))).astype(np.int8)
    train, test = slice(0, 3000), slice(3000, None)
    flat = LinearPart((1,), bins=0).fit(X[train], y[train])
    stepped = LinearPart((1,)).fit(X[train], y[train])
    assert 1 < len(stepped.edges_[0]) <= 9 and len(flat.edges_[0]) == 0
    assert roc_auc_score(y[test], stepped.logit(X[test])) > roc_auc_score(y[test], flat.logit(X[test])) + 0.1
    c = stepped.contributions(X[test])
    np.testing.assert_allclose(c.sum(1), stepped.logit(X[test]), atol=1e-9)
    old = flat.__getstate__()  # a linear half pickled before numbers had steps
    for k in ("bins", "edges_", "w_bins_"):
        old.pop(k)
    restored = LinearPart.__new__(LinearPart)
    restored.__setstate__(old)
    np.testing.assert_allclose(restored.logit(X[test]), flat.logit(X[test]), atol=1e-12)


def test_search_keeps_the_order_stops_at_the_budget_and_always_runs_one():
    X, y = _data()
    rows = np.arange(len(y))
    folds = folds_for(rows[:2000], rows[2000:2500], y, 3, False, 0)
    assert len(folds) == 3 and sorted(np.concatenate([f.held for f in folds]).tolist()) == list(range(2500))
    base = _lgb_params(load_config("b2c"), 0)
    settings = candidates(base, {"num_leaves": 7}, 6, seed=0)
    assert settings == candidates(base, {"num_leaves": 7}, 6, seed=0)  # seeded
    assert len(settings) == 6 and settings[4]["num_leaves"] == 7  # the motion's own after the curated four
    one = search(X, y, folds, [2], settings, max_rounds=200, patience=20, budget_seconds=0)
    assert len(one.trials) == 1 and one.trials["chosen"].all()
    every = search(X, y, folds, [2], settings, max_rounds=200, patience=20, budget_seconds=600)
    assert len(every.trials) == 6
    assert every.trials.loc[every.trials["chosen"], "cv_auc"].item() == every.trials["cv_auc"].max()
    assert set(every.held_rows) == set(range(2500))  # out of fold: never a test row (2500..2999)
    time_ordered = folds_for(rows[:2000], rows[2000:2500], y, 3, True, 0)
    assert len(time_ordered) == 1 and (time_ordered[0].held == rows[2000:2500]).all()


def test_a_linear_signal_is_blended_and_the_blend_is_kept_only_when_it_wins():
    X, y = _data(4000)
    rows = np.arange(len(y))
    folds = folds_for(rows[:3000], rows[3000:3500], y, 3, False, 0)
    base = _lgb_params(load_config("b2c"), 0)
    s = search(X, y, folds, [2], candidates(base, {}, 1, 0), max_rounds=300, patience=20, budget_seconds=60)
    s = choose_blend(s, X, y, folds, [2], 0)
    aucs = s.trials.attrs["blend_cv_auc"]
    assert s.blend == 0.0 or aucs[s.blend] - aucs[0.0] >= 0.0005
    assert s.linear_oof is not None and len(s.linear_oof) == len(s.oof)


@pytest.fixture(scope="module")
def blended():
    """A fitted spec-like model on a mostly linear signal, searched briefly."""
    X, y = _data(3000, seed=1)
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": pd.Series(X[:, 2]).map(lambda v: f"L{v:.0f}")})
    conf = load_config("b2c")
    return fit_and_evaluate(TrainingRows(frame, y), conf, name="t", fs=None, search_seconds=30), frame


def test_a_searched_model_records_its_search_and_its_reasons_sum_to_its_log_odds(blended):
    f, frame = blended
    assert f.params["search_candidates"] >= 1 and 0 < f.params["cv_auc"] < 1
    assert "search" in f.tables and f.tables["search"]["chosen"].sum() == 1
    assert set(f.metrics) == {"model", "logistic", "naive_bayes", "lightgbm_default"}
    m = f.model
    Xm = m.preprocessor.transform(frame.head(200))
    raw = m.raw(Xm)
    c = m.contributions(Xm)
    np.testing.assert_allclose(1 / (1 + np.exp(-c.sum(1))), raw, atol=1e-9)
    s = m.score_matrix(Xm)
    np.testing.assert_allclose(s.score, m.predict_matrix(Xm), atol=1e-9)
    assert m.blend > 0 and f.params["blend_linear_weight"] == m.blend  # a linear signal: the blend wins
    tree = np.asarray(m.booster.predict(Xm, pred_contrib=True))
    np.testing.assert_allclose(c, (1 - m.blend) * tree + m.blend * m.linear.contributions(Xm), atol=1e-9)


def test_without_a_search_the_motion_settings_are_used_as_they_are():
    X, y = _data(3000, seed=2)
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1]})
    conf = load_config("b2c")
    f = fit_and_evaluate(TrainingRows(frame, y), conf, name="t", fs=None, search_seconds=0)
    assert f.params["search_candidates"] == 1 and f.params["search_folds"] == 1
    assert f.params["num_leaves"] == conf.model.params["num_leaves"] and f.params["blend_linear_weight"] == 0
    assert "search" not in f.tables


def test_averaged_boosters_predict_the_mean_log_odds_and_the_mean_shap_values():
    X, y = _data(2000, seed=3)
    params = _lgb_params(load_config("b2c"), 0) | {"bagging_fraction": 0.8, "bagging_freq": 1}
    boosters = [
        lgb.train(params | {"seed": s}, lgb.Dataset(X, y, categorical_feature=[2]), 40 + 10 * s)
        for s in range(3)
    ]
    cut = [30, 50, None]  # each booster at its own early-stopped round (None: every tree)
    avg = average(boosters, cut)
    assert avg.num_trees() == 30 + 50 + 60
    pairs = list(zip(boosters, cut, strict=True))
    mean = np.mean([b.predict(X, raw_score=True, num_iteration=i) for b, i in pairs], axis=0)
    np.testing.assert_allclose(avg.predict(X, raw_score=True), mean, atol=1e-12)
    shap = np.mean([b.predict(X, pred_contrib=True, num_iteration=i) for b, i in pairs], axis=0)
    np.testing.assert_allclose(avg.predict(X, pred_contrib=True), shap, atol=1e-12)
    again = lgb.Booster(model_str=avg.model_to_string())  # it travels as text, as the artifact keeps it
    np.testing.assert_allclose(again.predict(X, raw_score=True), mean, atol=1e-12)
    assert average(boosters[:1], [30]).num_trees() == 30


def test_ensemble_selection_adds_a_member_only_when_it_raises_the_out_of_fold_auc():
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.3).astype(np.int8)
    signal = y * 1.0 + rng.normal(size=4000)

    def trial(oof):
        return Trial({}, oof, [1], [], 0.0, float(roc_auc_score(y, oof)))

    best = trial(signal + rng.normal(scale=1.0, size=4000))
    other = trial(signal + rng.normal(scale=1.0, size=4000))  # as good, errors of its own: averaging helps
    noise = trial(rng.normal(size=4000))
    chosen = select([best, other, noise], best, y, 5)
    assert chosen[:2] == [best, other] and noise not in chosen and len(chosen) <= 5
    assert select([best, noise], best, y, 5) == [best]  # noise never raises the AUC
    assert select([best, other, noise], best, y, 1) == [best]  # the default: the best setting alone


def test_a_cross_validated_model_is_its_fold_boosters_averaged_beside_a_refit(blended):
    f, _ = blended
    assert f.params["search_folds"] == 3 and f.params["refit_weight"] == 0.5  # the default
    trials = f.tables["search"]
    members = trials[trials["members"] > 0]
    assert members["chosen"].all() and trials["members"].sum() == 1  # the default: one member
    # the three fold boosters, each cut at its own early-stopped round, and the refit at their mean rounds
    # scaled by 3/2 (it sees every fit row, a fold saw two thirds)
    folds = round((members["rounds"] * 3).sum())
    assert f.model.booster.num_trees() == folds + round(members["rounds"].item() * 1.5)
    assert f.params["final_trees"] == f.model.booster.num_trees()


def test_the_refit_half_is_scored_out_of_fold_by_the_same_recipe_one_level_down():
    X, y = _data(4000, seed=4)
    rows = np.arange(len(y))
    folds = folds_for(rows[:3000], rows[3000:3500], y, 3, False, 0)
    settings = candidates(_lgb_params(load_config("b2c"), 0), {}, 1, 0)

    def searched():
        return search(X, y, folds, [2], settings, max_rounds=400, patience=20, budget_seconds=60)

    alone = searched()
    assert with_refit(searched(), X, y, folds, [2], 0.0).oof.tolist() == alone.oof.tolist()
    s = with_refit(searched(), X, y, folds, [2], 0.5)
    assert s.refit_weight == 0.5 and s.row_scale == pytest.approx(3500 / np.mean([len(f.fit) for f in folds]))
    assert s.rounds == pytest.approx(np.mean(s.fold_rounds) * s.row_scale)
    np.testing.assert_allclose(s.oof, 0.5 * alone.oof + 0.5 * s.refit_oof, atol=1e-12)
    fresh = []  # each fold's rows, trained afresh to the scaled rounds, scoring the fold's held rows
    for f, r in zip(folds, s.fold_rounds, strict=True):
        b = lgb.train(s.params, lgb.Dataset(X[f.fit], y[f.fit], categorical_feature=[2]), round(r * 1.5))
        fresh.append(b.predict(X[f.held], raw_score=True))
    fresh = np.concatenate(fresh)
    # the fold boosters grown on (their column draws after the stop are their own, so close, not equal)
    assert np.corrcoef(s.refit_oof, fresh)[0, 1] > 0.98
    assert np.std(s.refit_oof) == pytest.approx(np.std(fresh), rel=0.05)
    # more rounds spread the log-odds wider: what the calibrator reads
    assert np.std(s.refit_oof) > np.std(alone.oof)
