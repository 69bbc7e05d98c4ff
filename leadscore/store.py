"""The project's relational store: score log, alias audit log, outcomes, retrain decisions.

SQLite under LEADSCORE_HOME by default, PostgreSQL by URL. SQL is written once with ``?`` placeholders and
portable types; tables are created on first use, never on import.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from leadscore.errors import UserError
from leadscore.settings import Settings

SCHEMA = {
    "alias_audit": """CREATE TABLE IF NOT EXISTS alias_audit (
        id {serial}, at TEXT NOT NULL, who TEXT NOT NULL, model TEXT NOT NULL, alias TEXT NOT NULL,
        from_version TEXT, to_version TEXT, action TEXT NOT NULL, why TEXT, metrics TEXT)""",
    "score_log": """CREATE TABLE IF NOT EXISTS score_log (
        id {serial}, request_id TEXT NOT NULL, at TEXT NOT NULL, as_of TEXT NOT NULL, motion TEXT NOT NULL,
        entity_id TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, score DOUBLE PRECISION NOT NULL,
        tier TEXT NOT NULL, route TEXT NOT NULL, source TEXT NOT NULL, features TEXT NOT NULL)""",
    "outcomes": """CREATE TABLE IF NOT EXISTS outcomes (
        outcome_key TEXT PRIMARY KEY, motion TEXT NOT NULL, entity_id TEXT NOT NULL, account_id TEXT,
        stage TEXT, purchased INTEGER, value DOUBLE PRECISION, occurred_at TEXT NOT NULL,
        contacted_at TEXT, ingested_at TEXT NOT NULL, source TEXT)""",
    "retrain_decisions": """CREATE TABLE IF NOT EXISTS retrain_decisions (
        id {serial}, at TEXT NOT NULL, motion TEXT NOT NULL, decision TEXT NOT NULL, reasons TEXT NOT NULL,
        challenger TEXT, promoted INTEGER NOT NULL, metrics TEXT)""",
}
SCORE_LOG_COLUMNS = (
    "request_id",
    "at",
    "as_of",
    "motion",
    "entity_id",
    "model",
    "version",
    "score",
    "tier",
    "route",
    "source",
    "features",
)
INDEXES = [
    "CREATE INDEX IF NOT EXISTS score_log_entity ON score_log (motion, entity_id, as_of)",
    "CREATE INDEX IF NOT EXISTS outcomes_entity ON outcomes (motion, entity_id, occurred_at)",
]


INSERT_SCORES = (
    f"INSERT INTO score_log ({', '.join(SCORE_LOG_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SCORE_LOG_COLUMNS))})"
)


class Store:
    """A small, thread-safe wrapper over one connection (SQLite or PostgreSQL)."""

    def __init__(self, url: str, ddl: list[str] | None = None):
        """``ddl``: the tables to create on first use (default: the project's own)."""
        self.url = url
        self._lock = threading.RLock()
        self._con: Any  # sqlite3 or psycopg connection
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across crashes of the process
            self.kind, self._serial = "sqlite", "INTEGER PRIMARY KEY AUTOINCREMENT"
        elif url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self._con = psycopg.connect(url, autocommit=True)
            self.kind, self._serial = "postgres", "BIGSERIAL PRIMARY KEY"
        else:
            raise UserError(f"unsupported store URL {url!r} (sqlite:///path or postgresql://…)")
        statements = (
            ddl if ddl is not None else [d.format(serial=self._serial) for d in SCHEMA.values()] + INDEXES
        )
        with self._lock:
            for statement in statements:
                self._con.execute(statement)

    @classmethod
    def default(cls, settings: Settings | None = None) -> Store:
        return cls((settings or Settings.load()).store_url)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgres" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            cur = self._con.execute(self._sql(sql), tuple(params))
            return cur.rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """All rows in one transaction: either every row lands or none does."""
        rows = [tuple(r) for r in rows]
        if not rows:
            return 0
        with self._lock:
            if self.kind == "sqlite":
                self._con.execute("BEGIN")
                try:
                    cur = self._con.executemany(sql, rows)
                    n = cur.rowcount
                    self._con.execute("COMMIT")
                except BaseException:
                    self._con.execute("ROLLBACK")
                    raise
                return n
            with self._con.transaction(), self._con.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
                return cur.rowcount

    def append_scores(self, rows: Iterable[Sequence[Any]]) -> int:
        """Score-log rows (``SCORE_LOG_COLUMNS`` in order), all in one transaction."""
        return self.executemany(INSERT_SCORES, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._con.execute(self._sql(sql), tuple(params))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def insert_ignore(self) -> str:
        """The portable 'insert unless the key exists' prefix/suffix pair is dialect-specific."""
        return "INSERT OR IGNORE INTO" if self.kind == "sqlite" else "INSERT INTO"

    def on_conflict_ignore(self) -> str:
        return "" if self.kind == "sqlite" else " ON CONFLICT DO NOTHING"

    def close(self) -> None:
        with self._lock:
            self._con.close()
