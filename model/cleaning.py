"""A data set's own conventions, stored in the model so that every scoring path applies them as training did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


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
        return (
            self.missing_values.get(col, []) if isinstance(self.missing_values, dict) else self.missing_values
        )

    def fix_values(self, df: pd.DataFrame) -> pd.DataFrame:
        """The value fixes alone (a copy), on every column they name, the label included."""
        df = df.copy()
        for col, mapping in self.replace.items():
            if col in df.columns:
                df[col] = df[col].replace(mapping)
        return df

    def clean(self, col: str, s: pd.Series) -> pd.Series:
        """One column cleaned: its value fixes, then its missing tokens as missing values."""
        if mapping := self.replace.get(col):
            s = s.replace(mapping)
        if tokens := self.tokens(col):
            m = is_missing_token(s, tokens)
            if m.any():
                s = s.where(~m, None if s.dtype == object or s.dtype == "str" else np.nan)
        return s

    def apply(self, df: pd.DataFrame) -> pd.DataFrame:
        """Every column cleaned (a copy; the frame itself when there is nothing to do)."""
        if not self:
            return df
        return pd.DataFrame({c: self.clean(c, df[c]) for c in df.columns}, index=df.index)
