"""The three peers every run is compared with, on the same split: logistic regression, an Odoo-style naive Bayes
on binned values, and LightGBM with its default settings (what a quick notebook reaches)."""

from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import CategoricalNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, OrdinalEncoder, StandardScaler


def _split(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    cats = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    return [c for c in frame.columns if c not in cats], cats


def _as_text(frame: pd.DataFrame, cats: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for c in cats:
        out[c] = out[c].astype(object).where(out[c].notna(), "__missing__").astype(str)
    return out


def logistic(frame: pd.DataFrame, y: np.ndarray, seed: int = 0):
    nums, cats = _split(frame)
    ct = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                nums,
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=10), cats),
        ]
    )
    model = make_pipeline(ct, LogisticRegression(max_iter=2000, C=1.0, random_state=seed))
    model.fit(_as_text(frame, cats), y)
    return lambda f: model.predict_proba(_as_text(f, cats))[:, 1]


def naive_bayes(frame: pd.DataFrame, y: np.ndarray, bins: int = 10):
    """Every value binned (numbers into deciles, missing as its own bin), then categorical naive Bayes."""
    nums, cats = _split(frame)
    steps = []
    if nums:
        steps.append(
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1e12, keep_empty_features=True),
                    KBinsDiscretizer(
                        n_bins=bins,
                        encode="ordinal",
                        strategy="quantile",
                        quantile_method="averaged_inverted_cdf",
                    ),
                ),
                nums,
            )
        )
    if cats:
        steps.append(
            (
                "cat",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
                ),
                cats,
            )
        )
    ct = ColumnTransformer(steps)
    with warnings.catch_warnings():  # near-constant columns lose empty bins: expected for binned counts
        warnings.filterwarnings("ignore", message="Bins whose width are too small")
        Xt = ct.fit_transform(_as_text(frame, cats)) + 1
    nb = CategoricalNB(alpha=1.0, min_categories=(Xt.max(0) + 2).astype(int)).fit(Xt, y)
    hi = (Xt.max(0) + 1).astype(int)

    def predict(f: pd.DataFrame) -> np.ndarray:
        Z = np.clip(ct.transform(_as_text(f, cats)) + 1, 0, hi)
        return nb.predict_proba(Z)[:, 1]

    return predict


def lightgbm_default(X: np.ndarray, y: np.ndarray, cats: list[int], seed: int = 0):
    """LightGBM's classifier with its default settings on the model matrix (the same categories)."""
    model = lgb.LGBMClassifier(verbose=-1, random_state=seed, n_jobs=2).fit(X, y, categorical_feature=cats)
    return lambda M: np.asarray(model.predict_proba(M))[:, 1]
