"""The model search: candidate LightGBM settings cross-validated on the fit period, within a time budget; the
best (with ``max_members`` > 1, averaged with the other candidates that raise the out-of-fold AUC: ensemble
selection); a refit on every fit row weighed in beside the fold boosters, its out-of-fold stand-in scored
fold by fold (``with_refit``); and a blend with a logistic regression when it wins on the same out-of-fold rows.

Seeded and ordered: the candidates come in a fixed order (well-tried settings first, then seeded draws), so two
runs with the same budget on the same machine agree, and a larger budget only adds candidates. The budget stops
the search between candidates, never inside one; the first candidate always runs. Every candidate's out-of-fold
scores are early-stopped on their own fold and never see the test fold, and the category codes come from the
training rows only, so no label leaks into what the selection, the blend or the calibrator read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from model.linear import LinearPart

BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
MIN_MEMBER_GAIN = 0.0002  # out-of-fold AUC another member must add
MIN_BLEND_GAIN = 0.0005  # out-of-fold AUC a blend must add before the model carries a linear half

# Well-tried settings first: LightGBM's defaults at a slower rate, then shallower and deeper trees with more
# regularisation, and categories smoothed harder (high-cardinality columns: fewer, better-supported splits).
CURATED: tuple[dict[str, Any], ...] = (
    {"num_leaves": 31, "min_child_samples": 20, "feature_fraction": 0.8},
    {"num_leaves": 15, "min_child_samples": 50, "feature_fraction": 0.7, "lambda_l2": 1.0, "bagging_fraction": 0.8},
    {"num_leaves": 31, "min_child_samples": 40, "feature_fraction": 0.5, "lambda_l2": 3.0, "bagging_fraction": 0.8,
     "cat_smooth": 30.0, "min_data_per_group": 50},
    {"num_leaves": 63, "min_child_samples": 100, "feature_fraction": 0.6, "lambda_l2": 5.0, "bagging_fraction": 0.8},
)  # fmt: skip


@dataclass
class Fold:
    fit: np.ndarray  # row indices the candidate is trained on
    held: np.ndarray  # row indices it is early-stopped on and scores out of fold


@dataclass(eq=False)  # a trial is itself: compared by identity (ensemble selection counts repeats)
class Trial:
    params: dict[str, Any]
    oof: np.ndarray  # log-odds on the held rows of every fold, in ``held_rows`` order
    rounds: list[int]
    boosters: list[lgb.Booster]
    seconds: float
    auc: float = float("nan")
    logloss: float = float("nan")


@dataclass
class Searched:
    """What the search chose: the best setting and its rounds (for a refit), the members averaged (the best
    setting, and others when averaging them wins out of fold), their out-of-fold log-odds, and the blend."""

    params: dict[str, Any]
    rounds: float  # boosting rounds for a refit on every fit row: the best setting's, times ``row_scale``
    held_rows: np.ndarray
    oof: np.ndarray  # the members' mean out-of-fold log-odds (blend not applied)
    fold_boosters: list[lgb.Booster]  # every member's booster per fold, each early-stopped on its fold
    fold_rounds: list[int]
    fold_weights: list[float]  # each booster's weight in the average (a member chosen twice counts twice)
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)
    blend: float = 0.0  # weight of the linear half in log-odds space
    linear_oof: np.ndarray | None = None
    refit_weight: float = 0.0  # weight of a refit on every fit row beside the fold average (``with_refit``)
    refit_oof: np.ndarray | None = None  # the refit's out-of-fold stand-in: log-odds on ``held_rows``
    row_scale: float = 1.0  # every fit row over a fold's fit rows: what a refit's rounds are scaled by

    def blended_oof(self) -> np.ndarray:
        if self.linear_oof is None or not self.blend:
            return self.oof
        return (1 - self.blend) * self.oof + self.blend * self.linear_oof


def folds_for(
    train: np.ndarray, valid: np.ndarray, y: np.ndarray, k: int, time_ordered: bool, seed: int
) -> list[Fold]:
    """One fold (train → validation) for time-ordered rows or ``k`` ≤ 1, else ``k`` stratified folds over the
    whole fit period (train and validation rows)."""
    if time_ordered or k <= 1:
        return [Fold(train, valid)]
    rows = np.sort(np.r_[train, valid])
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [Fold(rows[a], rows[b]) for a, b in skf.split(rows, y[rows])]


def candidates(base: dict[str, Any], own: dict[str, Any], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` settings in a fixed order: the curated ones, the motion's own, then seeded draws."""
    fast = {"learning_rate": 0.05, "bagging_freq": 1}
    out = [base | fast | c for c in CURATED] + [base | own]
    rng = np.random.default_rng(seed)
    while len(out) < n:
        out.append(
            base
            | fast
            | {
                "num_leaves": int(np.exp(rng.uniform(np.log(7), np.log(127)))),
                "min_child_samples": int(np.exp(rng.uniform(np.log(5), np.log(300)))),
                "feature_fraction": round(float(rng.uniform(0.4, 1.0)), 2),
                "bagging_fraction": round(float(rng.uniform(0.6, 1.0)), 2),
                "lambda_l2": round(float(np.exp(rng.uniform(np.log(1e-3), np.log(10.0)))), 4),
                "cat_smooth": round(float(rng.uniform(1.0, 50.0)), 1),
                "min_data_per_group": int(rng.integers(10, 200)),
            }
        )
    return out[:n]


def _trial(
    params: dict[str, Any], X: np.ndarray, y: np.ndarray, folds: list[Fold], cats: list[int], rounds: int,
    patience: int,
) -> Trial:  # fmt: skip
    t0 = time.perf_counter()
    oof, its, boosters = [], [], []
    for f in folds:
        dtr = lgb.Dataset(X[f.fit], y[f.fit], categorical_feature=cats, free_raw_data=False)
        dva = lgb.Dataset(X[f.held], y[f.held], categorical_feature=cats, reference=dtr)
        b = lgb.train(
            params, dtr, rounds, valid_sets=[dva], callbacks=[lgb.early_stopping(patience, verbose=False)]
        )
        oof.append(np.asarray(b.predict(X[f.held], raw_score=True, num_iteration=b.best_iteration)))
        its.append(b.best_iteration or b.current_iteration())
        boosters.append(b)
    return Trial(params, np.concatenate(oof), its, boosters, time.perf_counter() - t0)


def search(
    X: np.ndarray,
    y: np.ndarray,
    folds: list[Fold],
    cats: list[int],
    settings: list[dict[str, Any]],
    *,
    max_rounds: int,
    patience: int,
    budget_seconds: float,
    max_members: int = 1,
) -> Searched:
    """Each setting cross-validated in turn until the budget would be overrun; the best out-of-fold AUC wins
    (log loss breaks ties)."""
    held = np.concatenate([f.held for f in folds])
    yh = y[held]
    t0, trials = time.perf_counter(), list[Trial]()
    for i, params in enumerate(settings):
        spent = time.perf_counter() - t0
        if i and spent + trials[-1].seconds > budget_seconds:
            break
        t = _trial(params, X, y, folds, cats, max_rounds, patience)
        t.auc = float(roc_auc_score(yh, t.oof)) if yh.min() != yh.max() else float("nan")
        t.logloss = float(log_loss(yh, 1 / (1 + np.exp(-t.oof)), labels=[0, 1]))
        trials.append(t)
    best = min(trials, key=lambda t: (-(t.auc if t.auc == t.auc else 0.0), t.logloss))
    members = select(trials, best, yh, max_members) if len(folds) > 1 else [best]
    unique = list({id(m): m for m in members}.values())
    table = pd.DataFrame(
        [
            {"candidate": i, "cv_auc": t.auc, "cv_logloss": t.logloss, "rounds": float(np.mean(t.rounds)),
             "seconds": t.seconds, "chosen": t is best, "members": sum(m is t for m in members)}
            | {k: v for k, v in t.params.items() if k not in _FIXED}
            for i, t in enumerate(trials)
        ]
    )  # fmt: skip
    # a refit on every fit row sees more rows than a fold did: its rounds scale with them
    every_row = len(np.unique(np.concatenate([np.r_[f.fit, f.held] for f in folds])))
    scale = every_row / np.mean([len(f.fit) for f in folds])
    return Searched(
        best.params,
        float(np.mean(best.rounds) * scale),
        held,
        np.mean([m.oof for m in members], axis=0),
        [b for m in unique for b in m.boosters],
        [r for m in unique for r in m.rounds],
        [members.count(m) / len(members) / len(m.boosters) for m in unique for _ in m.boosters],
        table,
        row_scale=float(scale),
    )


def select(trials: list[Trial], best: Trial, y: np.ndarray, max_members: int) -> list[Trial]:
    """Ensemble selection (Caruana et al. 2004) on the out-of-fold rows: from the best setting, add — with
    replacement — the trial whose log-odds, averaged in, raise the AUC most, while it adds ``MIN_MEMBER_GAIN``,
    up to ``max_members``. Every trial's out-of-fold rows are the same rows, scored by models that never saw
    them."""
    if y.min() == y.max():
        return [best]
    members, total = [best], best.oof.copy()
    auc = best.auc
    while len(members) < max_members:
        gains = [
            (float(roc_auc_score(y, (total + t.oof) / (len(members) + 1))), i) for i, t in enumerate(trials)
        ]
        top, i = max(gains)
        if top - auc < MIN_MEMBER_GAIN:
            break
        members.append(trials[i])
        total += trials[i].oof
        auc = top
    return members


_FIXED = {"objective", "metric", "verbosity", "seed", "num_threads", "deterministic", "force_col_wise"}


def choose_blend(
    s: Searched, X: np.ndarray, y: np.ndarray, folds: list[Fold], cats: list[int], seed: int
) -> Searched:
    """Cross-fit the linear half on the same folds; keep the blend weight with the best out-of-fold AUC when
    it adds at least ``MIN_BLEND_GAIN`` over the booster alone."""
    lin = np.concatenate(
        [LinearPart(tuple(cats), seed=seed).fit(X[f.fit], y[f.fit]).logit(X[f.held]) for f in folds]
    )
    yh = y[s.held_rows]
    if yh.min() == yh.max():
        return s
    aucs = {w: float(roc_auc_score(yh, (1 - w) * s.oof + w * lin)) for w in BLEND_WEIGHTS}
    w = max(aucs, key=aucs.__getitem__)
    s.linear_oof = lin
    s.blend = w if aucs[w] - aucs[0.0] >= MIN_BLEND_GAIN else 0.0
    s.trials.attrs["blend_cv_auc"] = aucs
    return s


def with_refit(
    s: Searched, X: np.ndarray, y: np.ndarray, folds: list[Fold], cats: list[int], weight: float
) -> Searched:
    """A refit on every fit row weighed in at ``weight`` beside the fold average, and out-of-fold scores that
    stand in for it, for the blend and the calibrator to read.

    The refit sees every fit row (a fold booster saw two thirds) for the best setting's rounds scaled to the rows
    (``Searched.rounds``): it ranks a little better, and its extra rounds spread its log-odds wider than the fold
    boosters' out-of-fold scores, so a calibrator fitted on those alone would read a narrower model than the one
    that serves. Each fold's stand-in is that fold's booster grown on its own rows by the same share of rounds
    and scored on its held rows: never seeing them, and spread as the refit is."""
    if weight <= 0 or len(folds) < 2:
        return s
    grown = []
    for f, b, r in zip(folds, s.fold_boosters, s.fold_rounds, strict=False):  # the best setting's come first
        target = max(1, round(r * s.row_scale))
        more = target - b.current_iteration()  # it kept ``patience`` rounds past its best: grow it further
        if more > 0:
            b = lgb.train(
                s.params, lgb.Dataset(X[f.fit], y[f.fit], categorical_feature=cats), more, init_model=b
            )
        grown.append(np.asarray(b.predict(X[f.held], raw_score=True, num_iteration=target)))
    s.refit_oof = np.concatenate(grown)
    s.oof = (1 - weight) * s.oof + weight * s.refit_oof
    s.refit_weight = weight
    return s
