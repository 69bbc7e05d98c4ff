"""Training building blocks: calibration, tiers, leakage guard, preprocessing, metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore.config import load_config
from model.calibration import Calibrator, choose_calibrator
from model.cleaning import Cleaning
from model.metrics import auc_difference_ci, base_rate_gap, by_decile, core, ece
from model.preprocess import Preprocessor
from model.tiers import fit_tiers
from training.leakage import guard


def test_calibration_fixes_a_miscalibrated_score():
    rng = np.random.default_rng(0)
    true = rng.uniform(0, 1, 20_000)
    y = (rng.uniform(0, 1, 20_000) < true).astype(int)
    raw = true**3  # systematically too low
    assert ece(y, raw) > 0.1
    cal, briers = choose_calibrator(raw[:10_000], y[:10_000])
    assert set(briers) == {"isotonic", "sigmoid"} and cal.method == min(briers, key=briers.get)
    fixed = cal.predict(raw[10_000:])
    assert ece(y[10_000:], fixed) < 0.03
    assert ((fixed >= 0) & (fixed <= 1)).all()
    with pytest.raises(ValueError):
        Calibrator("beta")


def test_isotonic_calibration_keeps_the_ranking_and_the_block_means():
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    raw = rng.uniform(0, 1, 5_000)
    y = (rng.uniform(0, 1, 5_000) < raw**2).astype(int)
    cal = Calibrator("isotonic").fit(raw, y)
    steps = IsotonicRegression(out_of_bounds="clip").fit(raw, y)
    # The same levels as the step function, at its blocks' centres ...
    assert np.isin(cal.y_, steps.predict(raw)).all() and len(cal.y_) == len(np.unique(steps.predict(raw)))
    assert np.all(np.diff(cal.x_) > 0) and np.all(np.diff(cal.y_) > 0)
    # ... joined by lines: strictly increasing inside, so new leads keep their order (the step function ties them).
    new = np.sort(rng.uniform(cal.x_[0], cal.x_[-1], 1_000))
    assert np.all(np.diff(cal.predict(new)) > 0)
    y_new = (rng.uniform(0, 1, 1_000) < new**2).astype(int)
    assert roc_auc_score(y_new, cal.predict(new)) == pytest.approx(roc_auc_score(y_new, new), abs=1e-12)
    assert roc_auc_score(y_new, steps.predict(new)) < roc_auc_score(y_new, new)
    assert abs(cal.predict(raw).mean() - y.mean()) < 0.01 and ece(y, cal.predict(raw)) < 0.03


def test_an_isotonic_calibrator_saved_as_a_step_function_still_loads_and_predicts_the_same():
    import pickle

    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(2)
    raw = rng.uniform(0, 1, 2_000)
    y = (rng.uniform(0, 1, 2_000) < raw).astype(int)
    old = Calibrator("isotonic")
    old.model_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
        raw, y
    )  # the earlier state
    loaded = pickle.loads(pickle.dumps(old))
    probe = np.r_[raw, -1.0, 2.0]
    np.testing.assert_allclose(loaded.predict(probe), old.model_.predict(probe), rtol=0, atol=1e-12)


def test_probability_tiers_follow_validation_shares():
    conf = load_config("b2b")  # A 5%, B 20%, C 50% (cumulative), D the rest
    p = np.random.default_rng(1).beta(1, 8, 50_000)
    policy = fit_tiers(conf, p, None)
    shares = pd.Series(policy.assign(p, None)).value_counts(normalize=True)
    assert shares["A"] == pytest.approx(0.05, abs=0.005)
    assert shares["A"] + shares["B"] == pytest.approx(0.20, abs=0.005)
    assert shares["D"] == pytest.approx(0.50, abs=0.005)
    assert policy.thresholds == sorted(policy.thresholds, reverse=True)


def test_expected_value_tiers_use_the_row_value():
    conf = load_config("b2c")  # expected value with value_feature cart_value, deal value 60, cost 0.5
    p = np.array([0.1, 0.1, 0.5])
    policy = fit_tiers(conf, np.random.default_rng(2).uniform(0, 0.3, 5000), np.zeros(5000))
    ev = policy.quantity(p, np.array([0.0, 500.0, 0.0]))
    assert ev.tolist() == pytest.approx([0.1 * 60 - 0.5, 0.1 * 500 - 0.5, 0.5 * 60 - 0.5])


def test_leakage_guard_flags_leaks_ids_and_constants_unless_kept():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    X = pd.DataFrame(
        {
            "leak": y * 10 + rng.normal(0, 0.1, 500),
            "id": [f"x{i}" for i in range(500)],
            "const": 1,
            "ok": rng.normal(0, 1, 500) + y * 0.5,
        }
    )
    flags = {f.column: f.reason for f in guard(X, y, 0.95)}
    assert set(flags) == {"leak", "id", "const"}
    assert "single-feature AUC" in flags["leak"] and "id-like" in flags["id"] and flags["const"] == "constant"
    assert "leak" not in {f.column for f in guard(X, y, 0.95, keep=["leak"])}


def test_preprocessor_casts_strings_dates_and_unknown_levels():
    train = pd.DataFrame(
        {
            "industry": pd.array(["a", "b", "a", "c", "a", "b"] * 5, dtype="str"),
            "signup": pd.to_datetime(["2026-01-01", "2026-01-05"] * 15).astype(str),
            "n": np.arange(30, dtype=float),
            "empty": [None] * 30,
            "same": ["x"] * 30,
        }
    )
    pre = Preprocessor(min_level_count=1).fit(train)
    assert pre.kinds_ == {"industry": "category", "signup": "date", "n": "number"}
    assert {d.column for d in pre.dropped_} == {"empty", "same"}
    assert pre.levels_["industry"] == ["a", "b", "c"]
    new = pd.DataFrame({"industry": ["b", "zzz"], "signup": ["2026-01-05", "2025-12-31"], "n": [1.0, 2.0]})
    params = pre.get_params()
    m = pre.transform(new)
    assert m[0, 0] == 1 and np.isnan(m[1, 0]) and pre.encode(dict(new), 2).unseen["industry"].sum() == 1
    assert not hasattr(pre, "unknown_counts_") and pre.get_params() == params  # transform writes no state
    assert m[0, 1] == 0 and m[1, 1] == 5  # ages in days against the training reference
    recs = pre.transform_records([{"industry": "b", "n": 1.0}, {"industry": "zzz", "n": 2.0}])
    np.testing.assert_array_equal(recs[:, [0, 2]], m[:, [0, 2]])
    rows = [{"industry": "zzz"}, {"industry": "a"}]
    assert pre.encode(pre.columns_of(rows), 2).unseen_per_row() == [{"industry": 1}, {}]


def test_cleaning_is_the_same_on_frames_and_records_idempotent_and_inside_the_preprocessor():
    clean = Cleaning(
        replace={"sector": {"technolgy": "tech", "tech": "technology"}},
        missing_values={"pdays": [-1], "job": ["unknown", " Select"]},
        protect=("when",),
    )
    assert clean.replace["sector"] == {"technolgy": "technology", "tech": "technology"}  # chains resolved
    raw = pd.DataFrame(
        {
            "sector": ["technolgy", "tech", "retail", None],
            "pdays": [-1.0, 3.0, np.nan, -1.0],
            "job": ["unknown", "Select", "admin", "admin"],
            "when": ["unknown"] * 4,
        }
    )
    once = clean.apply(raw)
    assert once["sector"].tolist()[:3] == ["technology", "technology", "retail"]
    assert (
        np.isnan(once["pdays"][0]) and np.isnan(once["pdays"][3]) and once["pdays"][1] == 3.0
    )  # -1 matches -1.0
    assert (
        once["job"].isna().tolist() == [True, True, False, False] and once["when"].tolist() == ["unknown"] * 4
    )
    pd.testing.assert_frame_equal(clean.apply(once), once)
    recs = clean.apply(
        pd.DataFrame(
            [
                {"sector": "technolgy", "pdays": -1, "job": "Select", "when": "unknown"},
                {"sector": "retail", "pdays": 3, "job": "admin"},
            ]
        )
    )
    assert recs["sector"].tolist() == ["technology", "retail"] and recs["pdays"].isna().tolist() == [
        True,
        False,
    ]
    assert recs["job"].isna().tolist() == [True, False] and recs["when"].tolist()[0] == "unknown"
    pre = Preprocessor(min_level_count=1, cleaning=clean).fit(raw.drop(columns=["when"]))
    assert pre.levels_["sector"] == ["retail", "technology"]
    a = pre.transform(pd.DataFrame({"sector": ["technolgy"], "pdays": [-1], "job": ["unknown"]}))
    np.testing.assert_array_equal(
        a, pre.transform_records([{"sector": "technolgy", "pdays": -1, "job": "unknown"}])
    )
    assert (
        a[0, 0] == 1
        and np.isnan(a[0, 1])
        and pre.encode(pre.columns_of([{"sector": "technolgy"}]), 1).unseen_per_row() == [{}]
    )
    np.testing.assert_array_equal(
        a, pre.transform_columns({"sector": ["technolgy"], "pdays": [-1], "job": ["unknown"]}, 1)
    )  # cleaning: the row path
    state = pre.__getstate__()  # a model saved before cleaning was part of it
    del state["cleaning"]
    old = Preprocessor.__new__(Preprocessor)
    old.__setstate__(state)
    assert old.cleaning is None and "Preprocessor" in repr(old) and old.transform(raw).shape == (4, 3)


def test_metrics():
    y = np.array([0, 0, 1, 1] * 250)
    p = np.where(y == 1, 0.8, 0.2)
    m = core(y, p)
    assert m["auc"] == 1.0 and m["ece"] == pytest.approx(0.2)  # |0.2 − 0| and |0.8 − 1|
    d = by_decile(y, p)
    assert len(d) == 10 and d["n"].sum() == 1000 and d["conversion"].iloc[0] == 1.0


def test_auc_difference_interval_separates_real_gaps_from_noise():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 4000)
    signal = y + rng.normal(0, 1.0, len(y))
    weaker = y + rng.normal(0, 2.0, len(y))
    diff, low, high = auc_difference_ci(y, signal, weaker, n_boot=300)
    assert 0 < low < diff < high  # a real gap: the whole interval is above zero
    same = signal + rng.normal(0, 1e-3, len(y))  # practically the same model
    diff, low, high = auc_difference_ci(y, same, signal, n_boot=300)
    assert low < 0 < high and abs(diff) < 0.005  # no gap: the interval straddles zero
    with pytest.raises(ValueError, match="both classes"):
        auc_difference_ci(np.zeros(10), signal[:10], weaker[:10])


def test_base_rate_gap_is_a_floor_under_ece():
    """A base-rate shift between the fit period and the test period bounds every model's ECE from below."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = rng.uniform(0, 1, 500)
        y = (rng.uniform(0, 1, 500) < np.clip(p + rng.normal(0, 0.2), 0, 1)).astype(int)
        assert abs(base_rate_gap(y, p)) <= ece(y, p) + 1e-12
    y = np.r_[np.ones(60), np.zeros(40)]  # the test period converts at 0.60
    p = np.full(100, 0.64)  # a constant predictor at the fit period's rate
    assert base_rate_gap(y, p) == pytest.approx(0.04)
    assert ece(y, p) == pytest.approx(0.04)


def test_columns_give_the_matrix_records_give():
    """The serving path hands the model columns; they must give exactly what rows of the same values give:
    numbers whole (ints, bools, NaN), text in a numeric column and None missing, categories by level, unseen
    levels missing, absent columns missing."""
    train = pd.DataFrame(
        {
            "industry": pd.array(["a", "b", "c"] * 10, dtype="str"),
            "n": np.arange(30, dtype=float),
            "flag": [True, False] * 15,
        }
    )
    pre = Preprocessor(min_level_count=1).fit(train)
    columns = {
        "industry": np.array(["b", "zzz", None, float("nan"), "a"], dtype=object),
        "n": np.array([1.5, np.nan, 3.0, -2.0, 0.0]),
        "flag": [True, None, "yes", 0, 1],
    }
    rows = [{k: v[i] for k, v in columns.items()} for i in range(5)]
    np.testing.assert_array_equal(pre.transform_columns(columns, 5), pre.transform_records(rows))
    np.testing.assert_array_equal(
        pre.transform(pd.DataFrame(rows)), pre.transform_records(rows)
    )  # one conversion
    np.testing.assert_array_equal(
        pre.transform_columns({"n": np.arange(5)}, 5), pre.transform_records([{"n": i} for i in range(5)])
    )
