"""The canonical data model: what a B2B and a B2C motion know about a lead.

Every entry point (generator output, CLI readers, the feedback ingester) validates through ``validate``;
a violation raises ``SchemaError`` naming the table, the column, the rule and up to five offending rows,
before anything is written.  Timestamps are UTC, stored tz-naive at second resolution.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from leadscore.accounts import match_accounts
from leadscore.files import find_table_file, read_table
from leadscore.motions import (
    B2B_EVENT_TYPES,
    B2B_STAGES,
    B2C_EVENT_TYPES,
    BUYING_ROLES,
    EMAIL_TYPES,
    MOTIONS,
    SENIORITIES,
)
from leadscore.motions import get as get_motion
from leadscore.times import utc_naive


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "str" | "int" | "float" | "bool" | "datetime"
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    unique: bool = False
    min_value: float | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    time_column: str | None = None
    description: str = ""
    extra_ok: bool = True

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name: str, kind: str, **kw) -> Column:
    return Column(name, kind, **kw)


TABLES: dict[str, dict[str, Table]] = {
    "b2b": {
        "accounts": Table(
            "accounts",
            (
                _c("account_id", "str", unique=True),
                _c("name", "str"),
                _c("industry", "str", nullable=True),
                _c("employee_count", "float", nullable=True, min_value=0),
                _c("annual_revenue", "float", nullable=True, min_value=0),
                _c("country", "str", nullable=True),
                _c("region", "str", nullable=True),
                _c("owner_id", "str", nullable=True),
                _c("territory", "str", nullable=True),
            ),
            description="one row per company (firmographics, ownership)",
        ),
        "leads": Table(
            "leads",
            (
                _c("lead_id", "str", unique=True),
                _c("account_id", "str", nullable=True),  # empty: matched by email or company (accounts.py)
                _c("created_at", "datetime"),
                _c("source", "str", nullable=True),
                _c("title", "str", nullable=True),
                _c("seniority", "str", nullable=True, allowed=SENIORITIES),
                _c("buying_role", "str", allowed=BUYING_ROLES),
                _c("email_domain_type", "str", allowed=EMAIL_TYPES),
            ),
            time_column="created_at",
            description="one row per person at an account",
        ),
        "events": Table(
            "events",
            (
                _c("event_id", "str"),
                _c("ts", "datetime"),
                _c("account_id", "str"),
                _c("lead_id", "str", nullable=True),
                _c("type", "str", allowed=B2B_EVENT_TYPES),
                _c("topic", "str", nullable=True),
            ),
            time_column="ts",
            description="behaviour; lead_id empty for account-level (third-party) intent",
        ),
        "outcomes": Table(
            "outcomes",
            (
                _c("lead_id", "str"),
                _c("account_id", "str"),
                _c("stage", "str", allowed=B2B_STAGES),
                _c("value", "float", nullable=True, min_value=0),
                _c("occurred_at", "datetime"),
            ),
            time_column="occurred_at",
            description="funnel stages reached and their time",
        ),
    },
    "b2c": {
        "customers": Table(
            "customers",
            (
                _c("customer_id", "str", unique=True),
                _c("created_at", "datetime"),
                _c("channel", "str", nullable=True),
                _c("country", "str", nullable=True),
                _c("device", "str", nullable=True),
                _c("consent_email", "bool"),
                _c("consent_sms", "bool"),
            ),
            time_column="created_at",
            description="one row per person (profile, consent)",
        ),
        "events": Table(
            "events",
            (
                _c("event_id", "str"),
                _c("ts", "datetime"),
                _c("customer_id", "str"),
                _c("session_id", "str"),
                _c("type", "str", allowed=B2C_EVENT_TYPES),
                _c("product_id", "str", nullable=True),
                _c("category", "str", nullable=True),
                _c("price", "float", nullable=True, min_value=0),
                _c("quantity", "float", nullable=True, min_value=0),
            ),
            time_column="ts",
            description="sessions, views, carts, checkouts",
        ),
        "orders": Table(
            "orders",
            (
                _c("order_id", "str", unique=True),
                _c("customer_id", "str"),
                _c("ts", "datetime"),
                _c("amount", "float", min_value=0),
                _c("margin", "float", nullable=True),
            ),
            time_column="ts",
            description="completed purchases",
        ),
        "outcomes": Table(
            "outcomes",
            (
                _c("customer_id", "str"),
                _c("purchased", "bool"),
                _c("value", "float", nullable=True, min_value=0),
                _c("occurred_at", "datetime"),
            ),
            time_column="occurred_at",
            description="purchase (or explicit no-purchase) observations",
        ),
    },
}
TABLES["hybrid"] = TABLES["b2b"]
assert set(TABLES) == set(MOTIONS)


class SchemaError(ValueError):
    """A table broke a rule of the canonical data model."""

    def __init__(
        self, table: str, column: str, rule: str, rows: pd.DataFrame | None = None, count: int | None = None
    ):
        self.table, self.column, self.rule = table, column, rule
        self.rows = (rows if rows is not None else pd.DataFrame()).head(5)
        n = self.count = count if count is not None else len(self.rows)
        shown = f" ({n} rows; first {len(self.rows)} shown)\n{self.rows.to_string()}" if n else ""
        super().__init__(f"{table}.{column}: {rule}{shown}")


def _bad(table: Table, df: pd.DataFrame, column: str, rule: str, mask: np.ndarray) -> SchemaError:
    rows = df.loc[mask, [c for c in table.names if c in df.columns]]
    return SchemaError(table.name, column, rule, rows, count=int(mask.sum()))


def _limit(now: pd.Timestamp | None) -> pd.Timestamp:
    """The latest acceptable timestamp: ``now`` (default: the current UTC time) plus one day of clock slack."""
    return (now if now is not None else pd.Timestamp.now("UTC").tz_localize(None)) + pd.Timedelta(days=1)


def _parse(col: Column, s: pd.Series) -> pd.Series:
    """A raw column cast to its canonical dtype; a value that cannot be read as its type becomes missing (the
    rules below report it: casting is part of validation, never a silent NaN)."""
    if col.kind == "datetime":
        return utc_naive(s).astype("datetime64[s]")
    if col.kind in ("int", "float"):
        return pd.to_numeric(s, errors="coerce").astype("float64")
    if col.kind == "bool":
        return s.map(_to_bool, na_action="ignore").astype("boolean")
    return s if isinstance(s.dtype, pd.StringDtype) else s.astype("str").where(s.notna())


def violations(
    col: Column, raw: pd.Series, parsed: pd.Series, limit: pd.Timestamp
) -> Iterator[tuple[str, np.ndarray]]:
    """The rule table: each rule a column breaks, as (what it says, which rows), in the order they are checked.
    ``coerce`` stops at the first rule a row breaks; ``row_problems`` reports every one per row."""
    null = raw.isna().to_numpy()
    unreadable = parsed.isna().to_numpy() & ~null
    if col.kind == "datetime":
        yield "unparseable timestamp", unreadable
        yield (
            f"timestamp in the future (after {limit})",
            (parsed > limit).to_numpy(dtype=bool, na_value=False),
        )
    elif col.kind in ("int", "float"):
        num = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
        yield "not a number", unreadable
        yield "infinite value", np.isinf(num)
        if col.min_value is not None:
            yield f"below minimum {col.min_value}", num < col.min_value
    elif col.kind == "bool":
        yield "not a boolean (true/false, yes/no, 1/0)", unreadable
    if not col.nullable:
        yield "must not be empty", null
    if col.allowed is not None:
        yield f"value not in {list(col.allowed)}", ~parsed.isin(col.allowed).to_numpy(dtype=bool) & ~null
    if col.unique:
        yield "duplicate key", parsed.duplicated(keep=False).to_numpy() & ~null


def _require_columns(table: Table, df: pd.DataFrame) -> None:
    missing = [c for c in table.names if c not in df.columns]
    if missing:
        seps = [s for s in (";", "\t", "|", ",") if len(df.columns) == 1 and s in str(df.columns[0])]
        why = f"; the file reads as a single column: it looks {seps[0]!r}-separated" if seps else ""
        raise SchemaError(
            table.name, missing[0], f"required column missing (have: {list(df.columns)[:20]}{why})"
        )


def coerce(table: Table, df: pd.DataFrame, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Cast a raw frame (Parquet or CSV) to the canonical dtypes, or raise ``SchemaError`` at the first rule
    broken. ``now`` (default: the current UTC time plus one day of clock slack) bounds every timestamp."""
    _require_columns(table, df)
    out = df.copy()
    limit = _limit(now)
    for col in table.columns:
        parsed = _parse(col, out[col.name])
        for rule, bad in violations(col, out[col.name], parsed, limit):
            if bad.any():
                raise _bad(table, out, col.name, rule, bad)
        out[col.name] = parsed
    return out


def plain_rows(
    table: Table, rows: list[dict], stamps: list[int], now: pd.Timestamp | None = None
) -> list[dict] | None:
    """``rows`` as ``coerce`` would give them (None for missing, numbers as floats, the time column last as ``stamps``)
    when each value is of its column's type and within its rules, without a frame (an events body's usual case);
    None when one needs casting or breaks a rule (``coerce`` then names it), or for another datetime or unique column."""
    time = table.time_column
    if time is None or (stamps and max(stamps) > int(_limit(now).timestamp())):
        return None
    cols = [c for c in table.columns if c.name != time]
    if any(c.kind == "datetime" or c.unique for c in cols):
        return None
    checks = [(c.name, c.kind, c.nullable, c.allowed and frozenset(c.allowed), c.min_value) for c in cols]
    out: list[dict] = []
    for r, t in zip(rows, stamps, strict=True):
        row = {}
        for name, kind, nullable, allowed, low in checks:
            v = r.get(name)
            if v is None:
                if not nullable:
                    return None
            elif kind == "str":
                if type(v) is not str or (allowed is not None and v not in allowed):
                    return None
            elif kind in ("int", "float"):
                if type(v) is not float and type(v) is not int:
                    return None
                v = float(v)
                if not math.isfinite(v) or (low is not None and v < low):
                    return None
            elif type(v) is not bool:  # a boolean column
                return None
            row[name] = v
        row[time] = t
        out.append(row)
    return out


def row_problems(table: Table, df: pd.DataFrame, now: pd.Timestamp | None = None) -> pd.Series:
    """Every rule ``coerce`` applies, per row: the reasons a row breaks them ('' when it is clean).

    Used where bad rows may be set aside (quarantine) instead of failing the whole file.
    """
    _require_columns(table, df)
    reasons: list[list[str]] = [[] for _ in range(len(df))]
    limit = _limit(now)
    for col in table.columns:
        for rule, bad in violations(col, df[col.name], _parse(col, df[col.name]), limit):
            for i in np.flatnonzero(bad):
                reasons[i].append(f"{col.name}: {rule}")
    return pd.Series(["; ".join(r) for r in reasons], index=df.index, dtype=object)


_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


def _to_bool(v: object) -> bool | None:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    t = str(v).strip().lower()
    if t.endswith(".0"):
        t = t[:-2]
    return True if t in _TRUE else False if t in _FALSE else None


def load_dataset(
    data_dir: str | Path, motion: str, now: pd.Timestamp | None = None
) -> dict[str, pd.DataFrame]:
    """Read and validate every canonical table of a motion from a folder, plus referential checks. B2B leads
    without an account are matched to one first (``leadscore.accounts``; the report is ``leads.attrs``)."""
    get_motion(motion)
    d = Path(data_dir)
    return validate_tables(
        motion, {name: read_table(find_table_file(d, name)) for name in TABLES[motion]}, now
    )


def validate_tables(
    motion: str, raw: dict[str, pd.DataFrame], now: pd.Timestamp | None = None
) -> dict[str, pd.DataFrame]:
    """Every table of a motion coerced and checked, leads matched to accounts, references checked: what
    ``load_dataset`` does to a folder, for tables read another way (one partition of each, on a cluster)."""
    tables = {name: coerce(spec, raw[name], now) for name, spec in TABLES[motion].items()}
    if get_motion(motion).family == "b2b":
        leads, accounts, match = match_accounts(tables["leads"], tables["accounts"])
        leads.attrs["account_match"] = match
        tables["leads"], tables["accounts"] = leads, accounts
    check_references(motion, tables)
    return tables


def check_references(motion: str, tables: dict[str, pd.DataFrame]) -> None:
    """Rows that point at an entity that does not exist are a violation in the entity tables.

    Events for unknown entities are handled by the feature pipeline (dropped and counted), since event
    streams routinely run ahead of CRM syncs; a lead without its account is a broken export.
    """
    if get_motion(motion).family == "b2b":
        leads, accounts = tables["leads"], tables["accounts"]
        bad = ~leads["account_id"].isin(accounts["account_id"]).to_numpy()
        if bad.any():
            raise _bad(TABLES[motion]["leads"], leads, "account_id", "unknown account", bad)


@dataclass
class DropReport:
    """What the feature pipeline dropped or deduplicated, and why (never silent)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, n: int) -> None:
        if n:
            self.counts[reason] = self.counts.get(reason, 0) + int(n)
