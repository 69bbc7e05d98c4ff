"""Leakage guard: columns too good to be true, id-like columns and constants are excluded and reported."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


@dataclass
class Flag:
    column: str
    reason: str
    auc: float | None = None


def single_feature_auc(s: pd.Series, y: np.ndarray) -> float:
    """AUC of one column alone (numbers as they are, categories by their positive rate), direction-free."""
    if len(np.unique(y)) < 2:
        return 0.5
    if s.dtype.kind in "biuf" or str(s.dtype) == "boolean":
        v = pd.to_numeric(s, errors="coerce").astype(float)
        v = v.fillna(v.median() if v.notna().any() else 0.0).to_numpy()
    else:
        key = s.astype("str").where(s.notna(), "__missing__")
        rate = pd.Series(y, index=s.index).groupby(key).transform("mean")
        v = rate.to_numpy(dtype=float)
    auc = roc_auc_score(y, v)
    return float(max(auc, 1 - auc))


def guard(
    X: pd.DataFrame, y: np.ndarray, max_auc: float, keep: Sequence[str] = (), skip: Sequence[str] = ()
) -> list[Flag]:
    flags: list[Flag] = []
    n = len(X)
    for col in X.columns:
        if col in keep or col in skip:
            continue
        s = X[col]
        nunique = s.nunique(dropna=True)
        if s.nunique(dropna=False) <= 1:
            flags.append(Flag(col, "constant"))
        elif nunique == n and n > 20 and s.dtype.kind not in "f":
            flags.append(Flag(col, "id-like: every value unique"))
        else:
            auc = single_feature_auc(s, y)
            if auc > max_auc:
                flags.append(Flag(col, f"single-feature AUC {auc:.3f} > {max_auc}", auc))
    return flags
