"""The canonical data model: what a B2B and a B2C motion know about a lead.

Every entry point (generator output, CLI readers, the feedback ingester) validates through ``validate``;
a violation raises ``SchemaError`` naming the table, the column, the rule and up to five offending rows,
before anything is written.  Timestamps are UTC, stored tz-naive at second resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

BUYING_ROLES = ("economic_buyer", "champion", "technical_evaluator", "procurement", "user", "unknown")
SENIORITIES = ("individual", "manager", "director", "vp", "cxo")
EMAIL_TYPES = ("business", "free")
B2B_EVENT_TYPES = (
    "page_view", "solution_page", "pricing_page", "demo_request", "trial_signup", "webinar",
    "content_download", "email_open", "email_click", "meeting_booked", "third_party_intent",
)
B2B_STAGES = ("mql", "sql", "opportunity", "won", "lost")
B2C_EVENT_TYPES = (
    "page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout_start",
    "purchase", "email_click", "wishlist_add",
)
CHANNELS = ("organic", "paid_search", "social", "email", "referral", "direct")
DEVICES = ("mobile", "desktop", "tablet")


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
        "accounts": Table("accounts", (
            _c("account_id", "str", unique=True), _c("name", "str"), _c("industry", "str", nullable=True),
            _c("employee_count", "float", nullable=True, min_value=0),
            _c("annual_revenue", "float", nullable=True, min_value=0), _c("country", "str", nullable=True),
            _c("region", "str", nullable=True), _c("owner_id", "str", nullable=True),
            _c("territory", "str", nullable=True),
        ), description="one row per company (firmographics, ownership)"),
        "leads": Table("leads", (
            _c("lead_id", "str", unique=True), _c("account_id", "str"), _c("created_at", "datetime"),
            _c("source", "str", nullable=True), _c("title", "str", nullable=True),
            _c("seniority", "str", nullable=True, allowed=SENIORITIES),
            _c("buying_role", "str", allowed=BUYING_ROLES),
            _c("email_domain_type", "str", allowed=EMAIL_TYPES),
        ), time_column="created_at", description="one row per person at an account"),
        "events": Table("events", (
            _c("event_id", "str"), _c("ts", "datetime"), _c("account_id", "str"),
            _c("lead_id", "str", nullable=True), _c("type", "str", allowed=B2B_EVENT_TYPES),
            _c("topic", "str", nullable=True),
        ), time_column="ts", description="behaviour; lead_id empty for account-level (third-party) intent"),
        "outcomes": Table("outcomes", (
            _c("lead_id", "str"), _c("account_id", "str"), _c("stage", "str", allowed=B2B_STAGES),
            _c("value", "float", nullable=True, min_value=0), _c("occurred_at", "datetime"),
        ), time_column="occurred_at", description="funnel stages reached and their time"),
    },
    "b2c": {
        "customers": Table("customers", (
            _c("customer_id", "str", unique=True), _c("created_at", "datetime"),
            _c("channel", "str", nullable=True), _c("country", "str", nullable=True),
            _c("device", "str", nullable=True), _c("consent_email", "bool"), _c("consent_sms", "bool"),
        ), time_column="created_at", description="one row per person (profile, consent)"),
        "events": Table("events", (
            _c("event_id", "str"), _c("ts", "datetime"), _c("customer_id", "str"), _c("session_id", "str"),
            _c("type", "str", allowed=B2C_EVENT_TYPES), _c("product_id", "str", nullable=True),
            _c("category", "str", nullable=True), _c("price", "float", nullable=True, min_value=0),
            _c("quantity", "float", nullable=True, min_value=0),
        ), time_column="ts", description="sessions, views, carts, checkouts"),
        "orders": Table("orders", (
            _c("order_id", "str", unique=True), _c("customer_id", "str"), _c("ts", "datetime"),
            _c("amount", "float", min_value=0), _c("margin", "float", nullable=True),
        ), time_column="ts", description="completed purchases"),
        "outcomes": Table("outcomes", (
            _c("customer_id", "str"), _c("purchased", "bool"), _c("value", "float", nullable=True, min_value=0),
            _c("occurred_at", "datetime"),
        ), time_column="occurred_at", description="purchase (or explicit no-purchase) observations"),
    },
}
TABLES["hybrid"] = TABLES["b2b"]
ENTITY = {"b2b": ("leads", "lead_id"), "b2c": ("customers", "customer_id"), "hybrid": ("leads", "lead_id")}


class SchemaError(ValueError):
    """A table broke a rule of the canonical data model."""

    def __init__(self, table: str, column: str, rule: str, rows: pd.DataFrame | None = None,
                 count: int | None = None):
        self.table, self.column, self.rule = table, column, rule
        self.rows = (rows if rows is not None else pd.DataFrame()).head(5)
        n = count if count is not None else len(self.rows)
        shown = f" ({n} rows; first {len(self.rows)} shown)\n{self.rows.to_string()}" if n else ""
        super().__init__(f"{table}.{column}: {rule}{shown}")


def _bad(table: Table, df: pd.DataFrame, column: str, rule: str, mask: np.ndarray) -> SchemaError:
    rows = df.loc[mask, [c for c in table.names if c in df.columns]]
    return SchemaError(table.name, column, rule, rows, count=int(mask.sum()))


def coerce(table: Table, df: pd.DataFrame, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Cast a raw frame (Parquet or CSV) to the canonical dtypes, or raise ``SchemaError``.

    Casting is part of validation: a value that cannot be read as its type is a violation, never a NaN.
    ``now`` (default: the current UTC time plus one day of clock slack) bounds every timestamp.
    """
    missing = [c for c in table.names if c not in df.columns]
    if missing:
        raise SchemaError(table.name, missing[0], f"required column missing (have: {list(df.columns)[:20]})")
    out = df.copy()
    limit = (now if now is not None else pd.Timestamp.now("UTC").tz_localize(None)) + pd.Timedelta(days=1)
    for col in table.columns:
        s = out[col.name]
        null = s.isna().to_numpy()
        if col.kind == "datetime":
            if s.dtype.kind == "M":  # already a timestamp (Parquet): only normalise zone and unit
                parsed = s.dt.tz_convert("UTC").dt.tz_localize(None) if s.dt.tz is not None else s
            else:
                parsed = pd.to_datetime(s, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
            bad = parsed.isna().to_numpy() & ~null
            if bad.any():
                raise _bad(table, out, col.name, "unparseable timestamp", bad)
            parsed = parsed.astype("datetime64[s]")
            fut = (parsed > limit).to_numpy()
            if fut.any():
                raise _bad(table, out, col.name, f"timestamp in the future (after {limit})", fut)
            out[col.name] = parsed
        elif col.kind in ("int", "float"):
            num = pd.to_numeric(s, errors="coerce").astype("float64")
            bad = num.isna().to_numpy() & ~null
            if bad.any():
                raise _bad(table, out, col.name, "not a number", bad)
            if np.isinf(num.to_numpy()).any():
                raise _bad(table, out, col.name, "infinite value", np.isinf(num.to_numpy()))
            if col.min_value is not None:
                low = (num < col.min_value).to_numpy()
                if low.any():
                    raise _bad(table, out, col.name, f"below minimum {col.min_value}", low)
            out[col.name] = num
        elif col.kind == "bool":
            mapped = s.map(_to_bool, na_action="ignore")
            bad = mapped.isna().to_numpy() & ~null
            if bad.any():
                raise _bad(table, out, col.name, "not a boolean (true/false, yes/no, 1/0)", bad)
            out[col.name] = mapped.astype("boolean")
        else:
            out[col.name] = s if isinstance(s.dtype, pd.StringDtype) else s.astype("str")
        null = out[col.name].isna().to_numpy()
        if not col.nullable and null.any():
            raise _bad(table, out, col.name, "must not be empty", null)
        if col.allowed is not None:
            bad = ~out[col.name].isin(col.allowed).to_numpy() & ~null
            if bad.any():
                raise _bad(table, out, col.name, f"value not in {list(col.allowed)}", bad)
        if col.unique:
            dup = out[col.name].duplicated(keep=False).to_numpy()
            if dup.any():
                raise _bad(table, out, col.name, "duplicate key", dup)
    return out


_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


def _to_bool(v: object) -> bool | None:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    t = str(v).strip().lower()
    if t.endswith(".0"):
        t = t[:-2]
    return True if t in _TRUE else False if t in _FALSE else None


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
    except Exception as exc:  # a reader's own message is the most precise
        raise ValueError(f"cannot read {p}: {exc}") from exc
    raise ValueError(f"cannot read {p}: unsupported format {suffix!r} (use .parquet or .csv)")


def find_table_file(data_dir: Path, name: str) -> Path:
    for ext in (".parquet", ".csv", ".csv.gz"):
        cand = data_dir / f"{name}{ext}"
        if cand.exists():
            return cand
    raise FileNotFoundError(f"table {name!r} not found in {data_dir} (expected {name}.parquet or {name}.csv)")


def load_dataset(data_dir: str | Path, motion: str, now: pd.Timestamp | None = None) -> dict[str, pd.DataFrame]:
    """Read and validate every canonical table of a motion from a folder, plus referential checks."""
    if motion not in TABLES:
        raise ValueError(f"unknown motion {motion!r}; expected one of {sorted(TABLES)}")
    d = Path(data_dir)
    tables = {name: coerce(spec, read_table(find_table_file(d, name)), now)
              for name, spec in TABLES[motion].items()}
    check_references(motion, tables)
    return tables


def check_references(motion: str, tables: dict[str, pd.DataFrame]) -> None:
    """Rows that point at an entity that does not exist are a violation in the entity tables.

    Events for unknown entities are handled by the feature pipeline (dropped and counted), since event
    streams routinely run ahead of CRM syncs; a lead without its account is a broken export.
    """
    if motion in ("b2b", "hybrid"):
        leads, accounts = tables["leads"], tables["accounts"]
        bad = ~leads["account_id"].isin(accounts["account_id"]).to_numpy()
        if bad.any():
            raise _bad(TABLES[motion]["leads"], leads, "account_id", "unknown account", bad)


def table_names(motion: str) -> list[str]:
    return list(TABLES[motion])


@dataclass
class DropReport:
    """What the feature pipeline dropped or deduplicated, and why (never silent)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, n: int) -> None:
        if n:
            self.counts[reason] = self.counts.get(reason, 0) + int(n)


def row_problems(table: Table, df: pd.DataFrame, now: pd.Timestamp | None = None) -> pd.Series:
    """Every rule ``coerce`` applies, per row: the reasons a row breaks them ('' when it is clean).

    Used where bad rows may be set aside (quarantine) instead of failing the whole file.
    """
    reasons = pd.Series([""] * len(df), index=df.index, dtype=object)

    def add(mask: np.ndarray, text: str) -> None:
        reasons[mask] = reasons[mask] + np.where(reasons[mask] == "", text, "; " + text)

    missing = [c for c in table.names if c not in df.columns]
    if missing:
        raise SchemaError(table.name, missing[0], f"required column missing (have: {list(df.columns)[:20]})")
    limit = (now if now is not None else pd.Timestamp.now("UTC").tz_localize(None)) + pd.Timedelta(days=1)
    for col in table.columns:
        s = df[col.name]
        null = s.isna().to_numpy()
        if not col.nullable:
            add(null, f"{col.name}: must not be empty")
        if col.kind == "datetime":
            parsed = pd.to_datetime(s, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
            add(parsed.isna().to_numpy() & ~null, f"{col.name}: unparseable timestamp")
            add((parsed > limit).to_numpy(), f"{col.name}: timestamp in the future")
        elif col.kind in ("int", "float"):
            num = pd.to_numeric(s, errors="coerce").astype("float64")
            add(num.isna().to_numpy() & ~null, f"{col.name}: not a number")
            add(np.isinf(num.to_numpy()), f"{col.name}: infinite value")
            if col.min_value is not None:
                add((num < col.min_value).to_numpy(), f"{col.name}: below minimum {col.min_value}")
        elif col.kind == "bool":
            add(s.map(_to_bool, na_action="ignore").isna().to_numpy() & ~null, f"{col.name}: not a boolean")
        if col.allowed is not None:
            add(~s.astype("str").isin(col.allowed).to_numpy() & ~null, f"{col.name}: value not in {list(col.allowed)}")
    return reasons
