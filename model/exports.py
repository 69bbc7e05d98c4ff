"""Bring-your-own-data: a YAML spec that describes a flat CRM export well enough to train on it and to score
files of its shape; the reader both use.

    name: x_education          # registered model name
    motion: b2c                # which conf/<motion>.yaml policy applies (tiers, routes, gates)
    data: ../../shared/data/x_education_leads/Leads.csv   # relative to the spec; --data overrides
    read_options: {sep: ","}   # passed to the reader
    id: Prospect ID            # optional id column (kept in scores, never a feature)
    label: {column: Converted, positive: [1]}
    timestamp: null            # optional; enables an out-of-time split
    exclude: [Tags, Lead Quality]   # never used: leakage, ids
    missing_values: [Select]   # tokens meaning missing; or {column: [tokens]}
    keep: []                   # columns the leakage guard must not drop (you vouch for them)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from leadscore.errors import UserError
from leadscore.motions import MotionName
from leadscore.schema import read_table
from model.cleaning import Cleaning


class LabelSpec(BaseModel):
    """Rows whose label is in ``positive`` are 1; with ``negative`` given, rows in neither are unlabelled
    (e.g. deals still open) and left out; otherwise every other row is 0."""

    model_config = ConfigDict(extra="forbid")
    column: str
    positive: list[Any]
    negative: list[Any] | None = None


class Join(BaseModel):
    """A lookup table left-joined onto the main one (CRM exports come as several files)."""

    model_config = ConfigDict(extra="forbid")
    data: str
    key: str | list[str]
    read_options: dict[str, Any] = {}
    prefix: str = ""


class DataSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    motion: MotionName
    data: str | None = None
    read_options: dict[str, Any] = {}
    id: str | None = None
    label: LabelSpec
    timestamp: str | None = None
    exclude: list[str] = []
    missing_values: list[Any] | dict[str, list[Any]] = []
    keep: list[str] = []
    segments: list[str] = []
    drop_duplicates: bool = False
    join: list[Join] = []
    replace: dict[str, dict[str, Any]] = {}  # column → {wrong value: right value}
    base_dir: Path = Path(".")

    def cleaning(self) -> Cleaning:
        """The value fixes and missing tokens, stored in the model so that every scoring path applies them."""
        return Cleaning(
            replace=self.replace,
            missing_values=self.missing_values,
            protect=(self.timestamp,) if self.timestamp else (),
        )


def load_spec(path: str | Path) -> DataSpec:
    p = Path(path)
    if not p.exists():
        raise UserError(f"no spec at {p}")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"spec {p} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise UserError(f"spec {p} must be a mapping with name, motion, label, …")
    try:
        return DataSpec.model_validate(raw | {"base_dir": p.resolve().parent})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"spec {p}: {problems}") from None


def data_path(spec: DataSpec, override: str | Path | None = None) -> Path:
    if override is not None:
        return Path(override)
    if not spec.data:
        raise UserError(f"spec {spec.name!r} names no data file; pass --data")
    return (spec.base_dir / spec.data).resolve()


def _clean_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Drop the empty columns a trailing separator creates."""
    return df.loc[:, [c for c in df.columns if not str(c).startswith("Unnamed:")]]


def read_export(spec: DataSpec, override: str | Path | None = None) -> pd.DataFrame:
    """The export as training reads it: reader options, lookup tables joined, value fixes applied.

    Scoring reads a file the same way (``leadscore score --spec``), so joined columns are there too.
    """
    df = _clean_columns(read_table(data_path(spec, override), **spec.read_options))
    for j in spec.join:
        other = _clean_columns(read_table((spec.base_dir / j.data).resolve(), **j.read_options))
        keys = [j.key] if isinstance(j.key, str) else j.key
        absent = [k for k in keys if k not in df.columns or k not in other.columns]
        if absent:
            raise UserError(f"join key {absent}: column missing in {spec.name!r} or in {j.data}")
        other = other.drop_duplicates(keys).rename(
            columns={c: f"{j.prefix}{c}" for c in other.columns if c not in keys}
        )
        df = df.merge(other, on=keys, how="left")
    return spec.cleaning().fix_values(df)
