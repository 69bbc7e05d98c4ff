"""A flat export split into what training needs: inputs, 0/1 label (unlabelled rows left out), ids, raw rows."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import numpy as np

from leadscore.errors import UserError
from model.exports import DataSpec, read_export


def read_flat(spec: DataSpec, override: str | Path | None = None, with_raw: bool = False):
    """Read a flat export and split it into (features frame, 0/1 label, ids[, raw rows]).

    The frame keeps the timestamp column (used for the split and for ages) but no id, label or excluded column;
    the raw rows keep every column but the label, as the export has them (the model applies the spec's value
    fixes and missing tokens itself), for holdouts, the model's signature and input example, and scoring.
    """
    df = read_export(spec, override)
    needed = [spec.label.column] + [c for c in (spec.id, spec.timestamp, spec.value) if c]
    missing = [c for c in needed + spec.exclude + spec.keep if c not in df.columns]
    if missing:
        near = {m: close[0] for m in missing if (close := _close(m, list(df.columns)))}
        hint = "; ".join(f"{m!r}: did you mean {c!r}?" for m, c in near.items())
        raise UserError(
            f"column(s) {missing} named in spec {spec.name!r} are not in the data"
            + (f" ({hint})" if hint else f" (columns: {list(df.columns)[:30]})")
        )
    if spec.drop_duplicates:
        df = df.drop_duplicates(ignore_index=True)
    raw_label = df[spec.label.column]
    if raw_label.isna().any():
        df = df.loc[raw_label.notna()].reset_index(drop=True)
        raw_label = df[spec.label.column]
    positive = {str(v) for v in spec.label.positive}
    text = raw_label.astype("str").str.strip()
    if spec.label.negative is not None:
        labelled = (text.isin(positive) | text.isin({str(v) for v in spec.label.negative})).to_numpy()
        df, text = df.loc[labelled].reset_index(drop=True), text[labelled].reset_index(drop=True)
    y = text.isin(positive).to_numpy().astype(np.int8)
    if y.sum() == 0:
        seen = sorted(map(str, raw_label.unique()))[:10]
        raise UserError(
            f"no row has a positive label: {spec.label.column} in {sorted(positive)}; values seen: {seen}"
        )
    ids = df[spec.id].astype("str") if spec.id else None
    raw = df.drop(
        columns=[spec.label.column]
    )  # the export's own shape and types (the model cleans it itself)
    X = spec.cleaning().apply(raw).drop(columns=[c for c in [spec.id, *spec.exclude] if c])
    return (X, y, ids, raw) if with_raw else (X, y, ids)


def _close(name: str, columns: list[str]) -> list[str]:
    """Columns that differ from ``name`` only in case, spacing or punctuation, or are spelt nearly alike."""
    squash = {re.sub(r"[^0-9a-z]", "", str(c).lower()): c for c in columns}
    same = squash.get(re.sub(r"[^0-9a-z]", "", name.lower()))
    return (
        [same]
        if same is not None
        else difflib.get_close_matches(name, [str(c) for c in columns], n=1, cutoff=0.8)
    )
