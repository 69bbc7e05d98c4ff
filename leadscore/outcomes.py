"""Outcome ingestion into the store: validated against the canonical outcomes table, idempotent (keyed), transactional
(all or nothing, or bad rows quarantined). The service (POST /outcomes) and the CLI both write through it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from leadscore import motions
from leadscore.errors import UserError
from leadscore.files import read_table
from leadscore.schema import TABLES, SchemaError, coerce, row_problems
from leadscore.store import Store


@dataclass
class Ingested:
    motion: str
    rows: int
    inserted: int
    duplicates: int
    quarantined: int


def detect_motion(df: pd.DataFrame) -> str:
    if {"customer_id", "purchased"} <= set(df.columns):
        return "b2c"
    if {"lead_id", "stage"} <= set(df.columns):
        return "b2b"
    raise UserError(
        "cannot tell the motion of this outcomes file: expected B2B columns (lead_id, account_id, "
        "stage, value, occurred_at) or B2C columns (customer_id, purchased, value, occurred_at)"
    )


def _keys(motion: str, df: pd.DataFrame) -> pd.Series:
    """An outcome id when the file has one, else (entity, stage or purchase flag, time)."""
    if "outcome_id" in df.columns and df["outcome_id"].notna().all():
        return motion + ":" + df["outcome_id"].astype(str)
    ent = df[motions.get(motion).id_column]
    what = df["purchased"].astype(str) if motion == "b2c" else df["stage"].astype(str)
    return motion + ":" + ent.astype(str) + "|" + what + "|" + df["occurred_at"].astype(str)


def ingest_frame(
    df: pd.DataFrame,
    store: Store,
    motion: str | None = None,
    quarantine: Path | None = None,
    source: str = "file",
) -> Ingested:
    # Outcomes are facts about leads or customers: hybrid shares the B2B outcome family.
    motion = motions.get(motion or detect_motion(df)).family
    table = TABLES[motion]["outcomes"]
    problems = row_problems(table, df)
    bad = problems != ""
    if bad.any():
        if quarantine is None:
            raise SchemaError(
                "outcomes",
                "*",
                f"{int(bad.sum())} invalid rows; nothing was written "
                "(use --quarantine FILE to set them aside and load the rest)",
                df.loc[bad].assign(reason=problems[bad]),
                count=int(bad.sum()),
            )
        q = df.loc[bad].assign(reason=problems[bad])
        quarantine.parent.mkdir(parents=True, exist_ok=True)
        (q.to_parquet if quarantine.suffix == ".parquet" else q.to_csv)(quarantine, index=False)
    good = coerce(table, df.loc[~bad].reset_index(drop=True))
    keys = _keys(motion, good)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    contacted = (
        pd.to_datetime(good["contacted_at"], errors="coerce", utc=True) if "contacted_at" in good else None
    )
    rows = []
    for i, r in enumerate(good.to_dict("records")):
        rows.append(
            (
                keys.iloc[i],
                motion,
                str(r.get(motions.get(motion).id_column)),
                r.get("account_id"),
                r.get("stage"),
                int(bool(r["purchased"])) if motion == "b2c" else None,
                None if pd.isna(r.get("value")) else float(r["value"]),
                r["occurred_at"].strftime("%Y-%m-%d %H:%M:%S"),
                None
                if contacted is None or pd.isna(contacted.iloc[i])
                else contacted.iloc[i].tz_localize(None).strftime("%Y-%m-%d %H:%M:%S"),
                now,
                source,
            )
        )
    before = count(store, motion)
    store.executemany(
        f"{store.insert_ignore()} outcomes (outcome_key, motion, entity_id, account_id, stage, "
        "purchased, value, occurred_at, contacted_at, ingested_at, source) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?){store.on_conflict_ignore()}",
        rows,
    )
    inserted = count(store, motion) - before
    return Ingested(motion, len(df), inserted, len(rows) - inserted, int(bad.sum()))


def ingest_file(
    path: str | Path, store: Store, motion: str | None = None, quarantine: str | Path | None = None
) -> Ingested:
    df = read_table(path)
    return ingest_frame(df, store, motion, Path(quarantine) if quarantine else None, source=str(path))


def count(store: Store, motion: str) -> int:
    return int(store.query("SELECT COUNT(*) AS n FROM outcomes WHERE motion = ?", (motion,))[0]["n"])
