"""Files as they are read: Parquet or CSV, no casting (the canonical tables' rules: ``leadscore.schema``); a CSV
that does not read says what it looks like (another separator, another encoding)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from leadscore.errors import UserError


def read_table(path: str | Path, **read_options) -> pd.DataFrame:
    """Read a Parquet or CSV file as it is (no casting): the one reader every entry point uses."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".csv", ".txt", ".tsv") or suffix == ".gz":
            return pd.read_csv(p, **({"sep": "\t"} if suffix == ".tsv" else {}) | read_options)
    except Exception as exc:  # a reader's own message is the most precise; with what the file looks like
        raise UserError(f"cannot read {p}: {str(exc).strip()}{_csv_hint(p, exc, read_options)}") from exc
    raise UserError(f"cannot read {p}: unsupported format {suffix!r} (use .parquet or .csv)")


def _csv_hint(p: Path, exc: Exception, read_options: dict) -> str:
    """What a CSV that did not read looks like: text in another encoding, or fields split by another separator."""
    if isinstance(exc, UnicodeDecodeError):
        return (
            " (the file is not UTF-8: give its encoding, e.g. read_options: {encoding: cp1252}, in the spec)"
        )
    if p.suffix.lower() != ".csv" or not isinstance(exc, pd.errors.ParserError):
        return ""
    with p.open(encoding=read_options.get("encoding") or "utf-8", errors="replace") as fh:
        lines = [line for _, line in zip(range(50), fh, strict=False)]
    used = read_options.get("sep", ",")
    even = [s for s in (",", ";", "\t", "|") if s != used and len({line.count(s) for line in lines}) == 1
            and lines[0].count(s) > 0]  # fmt: skip
    return f" (it looks {even[0]!r}-separated; it was read with sep={used!r})" if even else ""


def find_table_file(data_dir: Path, name: str) -> Path:
    for ext in (".parquet", ".csv", ".csv.gz"):
        cand = data_dir / f"{name}{ext}"
        if cand.exists():
            return cand
    raise FileNotFoundError(f"table {name!r} not found in {data_dir} (expected {name}.parquet or {name}.csv)")
