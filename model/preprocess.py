"""Preprocessing that lives inside the persisted model, so training and serving cannot disagree.

A scikit-learn estimator: ``__init__`` stores parameters, ``fit`` learns column kinds, fixed category levels and
dropped columns (state ends in ``_``), ``transform`` writes no state and returns a float matrix for LightGBM with
categories as fixed integer codes (an unseen level is missing; ``encode`` also says which values were unseen).
pandas 3 ``str`` columns, booleans, dates (→ age in days) and the data set's own cleaning are handled here. One
conversion serves every input shape: a DataFrame, columns of raw values, or plain dicts (the serving path).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from leadscore.times import utc_naive
from model.cleaning import Cleaning

Values: TypeAlias = Sequence[Any] | np.ndarray | pd.Series


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _number(v: Any) -> float:
    """A raw value as a model input number: NaN for a missing value or text that is not a number."""
    if _is_missing(v):
        return np.nan
    try:
        return float(v.strip() if isinstance(v, str) else v)
    except (TypeError, ValueError):
        return np.nan


def _numbers(values: Values, n: int) -> np.ndarray:
    """A column as float64: numeric arrays and columns whole, anything else value by value."""
    if isinstance(values, pd.Series):
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values.to_numpy(dtype=object)
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float64)
    return np.fromiter((_number(v) for v in values), dtype=np.float64, count=n)


def _texts(values: Values) -> list[Any]:
    """A column as the text its category levels are compared with (None where missing)."""
    if isinstance(values, pd.Series):
        return values.astype("str").where(values.notna()).to_numpy(dtype=object, na_value=None).tolist()
    return [None if _is_missing(v) else str(v) for v in values]


def _is_text(s: pd.Series) -> bool:
    return s.dtype == object or isinstance(s.dtype, pd.StringDtype | pd.CategoricalDtype)


def _looks_like_dates(s: pd.Series) -> bool:
    sample = s.dropna().astype("str").head(200)
    if (
        len(sample) < 5
        or not sample.str.contains(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}", regex=True).all()
    ):
        return False
    return pd.to_datetime(sample, errors="coerce", format="mixed").notna().mean() > 0.95


@dataclass
class Dropped:
    column: str
    reason: str


@dataclass
class Encoded:
    """A model matrix and, per categorical column, which rows held a level the model has never seen."""

    matrix: np.ndarray
    unseen: dict[str, np.ndarray]

    def unseen_per_row(self) -> list[dict[str, int]]:
        """Per row, the categorical columns whose value was never seen in training (scored as unknown)."""
        out: list[dict[str, int]] = [{} for _ in range(len(self.matrix))]
        for col, mask in self.unseen.items():
            for i in np.flatnonzero(mask).tolist():
                out[i][col] = 1
        return out


class Preprocessor(TransformerMixin, BaseEstimator):
    """Learns column kinds and fixed category levels; emits a float matrix with category codes."""

    def __init__(
        self,
        max_levels: int = 50,
        min_level_count: int = 5,
        time_column: str | None = None,
        cleaning: Cleaning | None = None,
    ):
        self.max_levels = max_levels
        self.min_level_count = min_level_count
        self.time_column = time_column
        self.cleaning = cleaning

    def __setstate__(self, state: dict) -> None:
        state.setdefault("cleaning", None)  # saved before the data set's cleaning moved into the model
        if "_lookup_" in state:  # saved before the lookup became public fitted state
            state["lookup_"] = state.pop("_lookup_")
        state.pop("unknown_counts_", None)
        super().__setstate__(state)

    def fit(self, X: pd.DataFrame, y=None) -> Preprocessor:
        X = self.cleaning.apply(X) if self.cleaning else X
        self.kinds_: dict[str, str] = {}
        self.levels_: dict[str, list[str]] = {}
        self.dropped_: list[Dropped] = []
        self.reference_time_ = None
        for col in X.columns:
            if col == self.time_column:
                continue
            s = X[col]
            if s.isna().all():
                self.dropped_.append(Dropped(col, "all values missing"))
                continue
            if s.nunique(dropna=False) <= 1:
                self.dropped_.append(Dropped(col, "constant"))
                continue
            if s.dtype.kind == "M" or (_is_text(s) and _looks_like_dates(s)):
                self.kinds_[col] = "date"
                ref = utc_naive(s).max()
                self.reference_time_ = ref if self.reference_time_ is None else max(ref, self.reference_time_)
            elif s.dtype.kind == "b" or str(s.dtype) == "boolean":
                self.kinds_[col] = "number"
            elif _is_text(s):
                counts = s.astype("str").where(s.notna()).value_counts()
                counts = counts[counts >= self.min_level_count]
                self.levels_[col] = sorted(counts.index[: self.max_levels].tolist())
                self.kinds_[col] = "category"
            else:
                self.kinds_[col] = "number"
        self.features_ = list(self.kinds_)
        self.categorical_ = [c for c in self.features_ if self.kinds_[c] == "category"]
        self.lookup_ = {c: {v: i for i, v in enumerate(self.levels_[c])} for c in self.categorical_}
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Float matrix in ``features_`` order; an absent column is all-missing, an unseen level missing."""
        return self.encode({c: X[c] for c in X.columns}, len(X)).matrix

    def transform_records(self, rows: list[dict]) -> np.ndarray:
        """The same matrix from plain dicts (the serving path)."""
        return self.encode(self.columns_of(rows), len(rows)).matrix

    def transform_columns(self, columns: Mapping[str, Values], n: int) -> np.ndarray:
        """The same matrix from columns of raw values (row i of each is row i)."""
        return self.encode(columns, n).matrix

    def columns_of(self, rows: list[dict]) -> dict[str, list[Any]]:
        """The columns this model reads, from plain dicts (a key absent from every row stays absent)."""
        names = [*self.features_, *([self.time_column] if self.time_column else [])]
        return {c: [r.get(c) for r in rows] for c in names if any(c in r for r in rows)}

    def encode(self, columns: Mapping[str, Values], n: int) -> Encoded:
        """The model matrix of ``n`` rows from columns of raw values, with the unseen levels per column.

        Numeric columns are copied whole where they are numeric arrays; text in a numeric column is read as a
        number where it is one. The data set's cleaning (value fixes, missing tokens) is applied first."""
        if self.cleaning:
            columns = {
                c: self.cleaning.clean(c, v if isinstance(v, pd.Series) else pd.Series(v))
                for c, v in columns.items()
            }
        out = np.full((n, len(self.features_)), np.nan, dtype=np.float64)
        unseen: dict[str, np.ndarray] = {}
        for j, col in enumerate(self.features_):
            values = columns.get(col)
            if values is None:
                continue
            kind = self.kinds_[col]
            if kind == "number":
                out[:, j] = _numbers(values, n)
            elif kind == "date":
                out[:, j] = self._ages(values, columns.get(self.time_column) if self.time_column else None)
            else:
                lookup = self.lookup_[col]
                codes = np.fromiter(
                    (-2 if v is None else lookup.get(v, -1) for v in _texts(values)), dtype=np.int64, count=n
                )
                unseen[col] = codes == -1
                out[:, j] = np.where(codes >= 0, codes, np.nan)
        return Encoded(out, unseen)

    def _ages(self, values: Values, reference: Values | None) -> np.ndarray:
        """Age in days of each date: against the row's own split time when the input has it, else against the
        latest date seen in training."""
        d = utc_naive(pd.Series(values) if not isinstance(values, pd.Series) else values).reset_index(
            drop=True
        )
        if reference is not None:
            ref = utc_naive(pd.Series(reference) if not isinstance(reference, pd.Series) else reference)
            ref = ref.reset_index(drop=True)
        else:
            ref = pd.Series(self.reference_time_, index=d.index)
        return ((ref - d).dt.total_seconds() / 86_400.0).to_numpy(dtype=np.float64, na_value=np.nan)

    def frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The same values as a DataFrame with fixed-level categoricals (for baselines and reports)."""
        m = self.transform(X)
        df = pd.DataFrame(m, columns=self.features_, index=X.index)
        for c in self.categorical_:
            df[c] = (
                pd.Categorical.from_codes(
                    np.nan_to_num(df[c], nan=-1).astype(int), categories=self.levels_[c]
                )
                if self.levels_[c]
                else pd.Categorical([None] * len(df))
            )
        return df

    def display_columns(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """The matrix's columns as readable values (a category's level, None where missing), whole columns at a
        time: what ``display_value`` gives value by value."""
        out: dict[str, np.ndarray] = {}
        for j, col in enumerate(self.features_):
            if self.kinds_.get(col) == "category":
                levels = np.asarray([*self.levels_[col], None], dtype=object)
                codes = np.where(np.isnan(X[:, j]), -1, X[:, j]).astype(np.int64)
                out[col] = levels[codes]
            else:
                out[col] = X[:, j]
        return out

    def display_value(self, col: str, code: float) -> object:
        if code != code:
            return None
        if self.kinds_.get(col) == "category":
            return self.levels_[col][int(code)]
        return code
