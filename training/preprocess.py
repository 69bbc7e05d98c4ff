"""Preprocessing that lives inside the persisted model, so training and serving cannot disagree.

A scikit-learn-style estimator: ``__init__`` stores parameters, ``fit`` learns column kinds, fixed category
levels and dropped columns (state ends in ``_``), ``transform`` returns a float matrix for LightGBM with
categories as fixed integer codes (unknown → missing, counted). pandas 3 ``str`` columns, booleans, dates
(→ age in days) and the data set's own cleaning (value fixes, missing-value tokens) are all handled here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

DAY_NS = 86_400 * 10**9


def _final_values(mapping: dict[str, Any]) -> dict[str, Any]:
    """Follow chains (a → b, b → c becomes a → c, b → c) so that cleaning twice equals cleaning once."""
    out = {}
    for start, v in mapping.items():
        seen = {start}
        while isinstance(v, str) and v in mapping and v not in seen:
            seen.add(v)
            v = mapping[v]
        out[start] = v
    return out


def _numbers(tokens: list[Any]) -> list[float]:
    out = []
    for t in tokens:
        try:
            if not isinstance(t, bool):
                out.append(float(t))
        except (TypeError, ValueError):
            pass
    return out


def is_missing_token(series: pd.Series, tokens: list[Any]) -> np.ndarray:
    """Values equal to a token as stripped text, or as a number in a numeric column (-1 matches -1.0)."""
    hit = series.astype("str").str.strip().isin([str(t).strip() for t in tokens]).to_numpy()
    nums = _numbers(tokens)
    if nums and series.dtype.kind in "iuf":
        hit = hit | np.isin(series.to_numpy(dtype=np.float64, na_value=np.nan), nums)
    return hit & series.notna().to_numpy()


def _is_token(v: Any, texts: set[str], nums: set[float]) -> bool:
    if isinstance(v, int | float) and not isinstance(v, bool) and v in nums:
        return True
    return str(v).strip() in texts


@dataclass(frozen=True)
class Cleaning:
    """A data set's own conventions, part of the model so that every scoring path applies them as training did:
    value fixes (``replace``: column → {wrong: right}) and tokens that mean missing (a list for every column, or
    column → tokens). ``protect`` names columns whose tokens stay (the split timestamp). Idempotent."""

    replace: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing_values: list[Any] | dict[str, list[Any]] = field(default_factory=list)
    protect: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "replace", {c: _final_values(m) for c, m in self.replace.items()})

    def __bool__(self) -> bool:
        return bool(self.replace or self.missing_values)

    def tokens(self, col: str) -> list[Any]:
        if col in self.protect:
            return []
        return self.missing_values.get(col, []) if isinstance(self.missing_values, dict) else self.missing_values

    def fix_values(self, df: pd.DataFrame) -> pd.DataFrame:
        """The value fixes alone (a copy), on every column they name, the label included."""
        df = df.copy()
        for col, mapping in self.replace.items():
            if col in df.columns:
                df[col] = df[col].replace(mapping)
        return df

    def apply(self, df: pd.DataFrame) -> pd.DataFrame:
        if not self:
            return df
        df = self.fix_values(df)
        for col in df.columns:
            if tokens := self.tokens(col):
                m = is_missing_token(df[col], tokens)
                if m.any():
                    df[col] = df[col].where(~m, None if df[col].dtype == object or df[col].dtype == "str" else np.nan)
        return df

    def apply_records(self, rows: list[dict]) -> list[dict]:
        """The same on plain dicts (the serving path): tokens compare as stripped text."""
        if not self:
            return rows
        sets: dict[str, tuple[set[str], set[float]]] = {}
        out = []
        for r in rows:
            r = dict(r)
            for col, mapping in self.replace.items():
                if col in r and isinstance(r[col], str) and r[col] in mapping:
                    r[col] = mapping[r[col]]
            for col, v in r.items():
                if v is None or not (tokens := self.tokens(col)):
                    continue
                if col not in sets:
                    sets[col] = ({str(t).strip() for t in tokens}, set(_numbers(tokens)))
                if _is_token(v, *sets[col]):
                    r[col] = None
            out.append(r)
        return out


def _number(v: Any) -> float:
    """A raw value as a model input number: NaN for a missing value or text (as in ``transform_records``)."""
    return np.nan if v is None or isinstance(v, str) else float(v)


def _is_text(s: pd.Series) -> bool:
    return s.dtype == object or isinstance(s.dtype, pd.StringDtype | pd.CategoricalDtype)


def _looks_like_dates(s: pd.Series) -> bool:
    sample = s.dropna().astype("str").head(200)
    if len(sample) < 5 or not sample.str.contains(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}", regex=True).all():
        return False
    return pd.to_datetime(sample, errors="coerce", format="mixed").notna().mean() > 0.95


def _to_datetime(s: pd.Series) -> pd.Series:
    if s.dtype.kind == "M":
        return s.dt.tz_localize(None) if getattr(s.dt, "tz", None) is not None else s
    return pd.to_datetime(s, errors="coerce", format="mixed", utc=True).dt.tz_localize(None)


@dataclass
class Dropped:
    column: str
    reason: str


class Preprocessor(TransformerMixin, BaseEstimator):
    """Learns column kinds and fixed category levels; emits a float matrix with category codes."""

    def __init__(self, max_levels: int = 50, min_level_count: int = 5, time_column: str | None = None,
                 cleaning: Cleaning | None = None):
        self.max_levels = max_levels
        self.min_level_count = min_level_count
        self.time_column = time_column
        self.cleaning = cleaning

    def __setstate__(self, state: dict) -> None:
        state.setdefault("cleaning", None)  # saved before the data set's cleaning moved into the model
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
                ref = _to_datetime(s).max()
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
        self._lookup_ = {c: {v: i for i, v in enumerate(self.levels_[c])} for c in self.categorical_}
        return self

    def _ages(self, X: pd.DataFrame, col: str) -> np.ndarray:
        d = _to_datetime(X[col])
        if self.time_column and self.time_column in X.columns:
            ref = _to_datetime(X[self.time_column])
        else:
            ref = pd.Series(self.reference_time_, index=X.index)
        return ((ref - d).dt.total_seconds() / 86_400.0).to_numpy(dtype=np.float64, na_value=np.nan)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Float matrix in ``features_`` order; an absent column is all-missing, an unseen level missing."""
        X = self.cleaning.apply(X) if self.cleaning else X
        out = np.full((len(X), len(self.features_)), np.nan, dtype=np.float64)
        self.unknown_counts_: dict[str, int] = {}
        for j, col in enumerate(self.features_):
            if col not in X.columns:
                continue
            kind = self.kinds_[col]
            s = X[col]
            if kind == "number":
                out[:, j] = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            elif kind == "date":
                out[:, j] = self._ages(X, col)
            else:
                lookup = self._lookup_[col]
                vals = s.astype("str").where(s.notna()).to_numpy(dtype=object)
                codes = np.fromiter((lookup.get(v, -1) if isinstance(v, str) else -2 for v in vals),
                                    dtype=np.int64, count=len(vals))
                self.unknown_counts_[col] = int((codes == -1).sum())
                out[:, j] = np.where(codes >= 0, codes, np.nan)
        return out

    def transform_records(self, rows: list[dict]) -> np.ndarray:
        """The serving fast path: plain dicts to the same matrix, no pandas."""
        rows = self.cleaning.apply_records(rows) if self.cleaning else rows
        out = np.full((len(rows), len(self.features_)), np.nan, dtype=np.float64)
        for j, col in enumerate(self.features_):
            kind = self.kinds_[col]
            if kind == "category":
                lookup = self._lookup_[col]
                for i, r in enumerate(rows):
                    v = r.get(col)
                    if v is not None and v == v:
                        code = lookup.get(str(v))
                        if code is not None:
                            out[i, j] = code
            elif kind == "number":
                for i, r in enumerate(rows):
                    v = r.get(col)
                    if v is not None and not isinstance(v, str):
                        out[i, j] = float(v)
            else:
                frame = pd.DataFrame(rows)
                if col in frame.columns:
                    out[:, j] = self._ages(frame, col)
        return out

    def transform_columns(self, columns: Mapping[str, Sequence[Any]], n: int) -> np.ndarray:
        """The same matrix from columns of raw values (row i of each is row i): numeric columns are copied
        whole, categorical ones looked up value by value. A model that cleans values or reads dates takes the
        row path."""
        if self.cleaning or "date" in self.kinds_.values():
            lists = {c: list(v) for c, v in columns.items()}
            return self.transform_records([{c: v[i] for c, v in lists.items()} for i in range(n)])
        out = np.full((n, len(self.features_)), np.nan, dtype=np.float64)
        for j, col in enumerate(self.features_):
            values = columns.get(col)
            if values is None:
                continue
            if self.kinds_[col] == "number":
                if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
                    out[:, j] = values
                else:
                    out[:, j] = np.fromiter((_number(v) for v in values), dtype=np.float64, count=n)
            else:
                lookup = self._lookup_[col]
                out[:, j] = np.fromiter((lookup.get(str(v), np.nan) if v is not None and v == v else np.nan
                                         for v in values), dtype=np.float64, count=n)
        return out

    def unknown_levels(self, rows: list[dict]) -> dict[str, int]:
        """How many values of each categorical column this model has never seen."""
        n: dict[str, int] = {}
        for row in self.unknown_levels_each(rows):
            for col in row:
                n[col] = n.get(col, 0) + 1
        return n

    def unknown_levels_each(self, rows: list[dict]) -> list[dict[str, int]]:
        """Per row, the categorical columns whose value this model has never seen (scored as unknown)."""
        rows = self.cleaning.apply_records(rows) if self.cleaning else rows
        out: list[dict[str, int]] = [{} for _ in rows]
        for col in self.categorical_:
            lookup = self._lookup_[col]
            for r, o in zip(rows, out, strict=True):
                if (v := r.get(col)) is not None and v == v and str(v) not in lookup:
                    o[col] = 1
        return out

    def frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The same values as a DataFrame with fixed-level categoricals (for baselines and reports)."""
        m = self.transform(X)
        df = pd.DataFrame(m, columns=self.features_, index=X.index)
        for c in self.categorical_:
            df[c] = pd.Categorical.from_codes(np.nan_to_num(df[c], nan=-1).astype(int), categories=self.levels_[c]) \
                if self.levels_[c] else pd.Categorical([None] * len(df))
        return df

    def display_value(self, col: str, code: float) -> object:
        if code != code:
            return None
        if self.kinds_.get(col) == "category":
            return self.levels_[col][int(code)]
        return code
