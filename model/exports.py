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
    consent:                   # B2C: which columns say a channel may be used (else every lead is unknown)
      email: {column: Do Not Email, consent: ["No"]}
      sms: {column: Do Not Call, consent: ["No"]}
      unknown: no_consent      # or consent
    value: Amount              # optional deal-value column for expected-value tiers and routes
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from leadscore.config import Route
from leadscore.errors import UserError
from leadscore.files import read_table
from leadscore.motions import MotionName
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


class ConsentColumn(BaseModel):
    """An export column that says whether a channel may be used: consent where its value is one of ``consent``
    (e.g. "Do Not Email" = "No"), no consent where it is one of ``no_consent``; anything else is unknown."""

    model_config = ConfigDict(extra="forbid")
    column: str
    consent: list[Any]
    no_consent: list[Any] = []


class ConsentSpec(BaseModel):
    """Email and SMS consent from export columns, and what an unknown (empty, other) value means."""

    model_config = ConfigDict(extra="forbid")
    email: ConsentColumn | None = None
    sms: ConsentColumn | None = None
    unknown: Literal["no_consent", "consent"] = "no_consent"


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
    consent: ConsentSpec | None = None
    # a deal-value column: expected value = probability × this value (− cost of contact)
    value: str | None = None
    # this export's routes, in place of the motion's (whose conditions name the motion's features): conditions
    # on the export's columns as the model reads them, tiers, consent, expected value
    routes: list[Route] | None = None
    base_dir: Path = Path(".")

    def cleaning(self) -> Cleaning:
        """The value fixes and missing tokens, stored in the model so that every scoring path applies them."""
        return Cleaning(
            replace=self.replace,
            missing_values=self.missing_values,
            protect=(self.timestamp,) if self.timestamp else (),
        )

    def reader(self) -> ExportReader:
        """How files of this export's shape are read — kept in the model, so that scoring a raw export needs no
        spec: reader options, the id column, the lookup tables (their rows, read now), value fixes, consent."""
        joins = []
        for j in self.join:
            other = _clean_columns(read_table((self.base_dir / j.data).resolve(), **j.read_options))
            keys = [j.key] if isinstance(j.key, str) else list(j.key)
            absent = [k for k in keys if k not in other.columns]
            if absent:
                raise UserError(f"join key {absent}: column missing in {j.data}")
            other = other.drop_duplicates(keys).rename(
                columns={c: f"{j.prefix}{c}" for c in other.columns if c not in keys}
            )
            joins.append((keys, other))
        return ExportReader(dict(self.read_options), self.id, joins, self.cleaning(), self.consent)


@dataclass
class ExportReader:
    """Reads a file of one export's shape as training read it (``read``) and says what consent its rows give."""

    read_options: dict[str, Any]
    id: str | None
    joins: list[tuple[list[str], pd.DataFrame]]
    cleaning: Cleaning
    consent: ConsentSpec | None = None

    def read(self, path: str | Path, strict: bool = False) -> pd.DataFrame:
        """The file with the lookups joined and the value fixes applied. A file without a join key is refused
        when ``strict`` (training); when scoring, the coverage guard reports the columns that are then missing."""
        df = _clean_columns(read_table(path, **self.read_options))
        for keys, other in self.joins:
            absent = [k for k in keys if k not in df.columns]
            if absent and strict:
                raise UserError(f"join key {absent}: column missing in {path}")
            if not absent:
                df = df.merge(other, on=keys, how="left")
        return self.cleaning.fix_values(df)

    def consent_of(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
        """(email, sms) consent per row from the mapped columns (a channel left unmapped: the spec's policy for
        unknown consent); None when the spec says nothing of consent."""
        if self.consent is None:
            return None
        unknown = self.consent.unknown == "consent"
        return tuple(_channel(df, c, unknown) for c in (self.consent.email, self.consent.sms))  # type: ignore[return-value]


def _channel(df: pd.DataFrame, c: ConsentColumn | None, unknown: bool) -> np.ndarray:
    if c is None or c.column not in df.columns:
        return np.full(len(df), unknown)
    text = df[c.column].astype("str").str.strip()
    yes, no = text.isin([str(v) for v in c.consent]), text.isin([str(v) for v in c.no_consent])
    if not c.no_consent:  # consent values given alone: every other known value is no consent
        no = ~yes & df[c.column].notna()
    return np.where(yes, True, np.where(no, False, unknown))


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

    Scoring reads a file the same way (the model keeps ``spec.reader()``), so joined columns are there too.
    """
    return spec.reader().read(data_path(spec, override), strict=True)
