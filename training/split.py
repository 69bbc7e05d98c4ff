"""The split, made before any fitting: out-of-time where rows have a time, stratified otherwise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.errors import UserError

TIME = "as_of"  # the point-in-time column of a motion's training set


@dataclass
class Split:
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    kind: str


def split_rows(y: np.ndarray, times: np.ndarray | None, seed: int) -> Split:
    """Out-of-time when a timestamp exists (latest 20% test, the next latest 20% validation), else stratified."""
    n = len(y)
    if times is not None:
        t = pd.to_datetime(pd.Series(times)).to_numpy()
        cut = np.quantile(t.astype("int64"), 0.8)
        test = np.flatnonzero(t.astype("int64") >= cut)
        rest = np.flatnonzero(t.astype("int64") < cut)
        cut2 = np.quantile(t[rest].astype("int64"), 0.8) if len(rest) else 0
        valid = rest[t[rest].astype("int64") >= cut2]
        train = rest[t[rest].astype("int64") < cut2]
        kind = "out-of-time"
    else:
        from sklearn.model_selection import train_test_split

        idx = np.arange(n)
        rest, test = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
        train, valid = train_test_split(rest, test_size=0.2, stratify=y[rest], random_state=seed)
        kind = "stratified"
    for name, part in (("train", train), ("validation", valid), ("test", test)):
        if len(part) == 0 or y[part].min() == y[part].max():
            raise UserError(
                f"the {name} fold has {len(part)} rows and only one class; need more data or more time"
            )
    return Split(np.sort(train), np.sort(valid), np.sort(test), kind)
