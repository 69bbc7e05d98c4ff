"""The project's relational store: score log, alias audit log, outcomes, retrain decisions.

SQLite under LEADSCORE_HOME by default, PostgreSQL by URL. SQL is written once with ``?`` placeholders and
portable types; tables are created on first use, never on import.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from leadscore.errors import UserError
from leadscore.settings import Settings

log = logging.getLogger("leadscore.store")

SCHEMA = {
    "alias_audit": """CREATE TABLE IF NOT EXISTS alias_audit (
        id {serial}, at TEXT NOT NULL, who TEXT NOT NULL, model TEXT NOT NULL, alias TEXT NOT NULL,
        from_version TEXT, to_version TEXT, action TEXT NOT NULL, why TEXT, metrics TEXT)""",
    # the score log's id is SQLite's own rowid (no AUTOINCREMENT: its bookkeeping row, written with every insert,
    # made shipping 1,000 rows 9.1 ms, not 7.3); its rows are never deleted, so ids still only grow
    "score_log": """CREATE TABLE IF NOT EXISTS score_log (
        id {rowid}, request_id TEXT NOT NULL, at TEXT NOT NULL, as_of TEXT NOT NULL, motion TEXT NOT NULL,
        entity_id TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, score DOUBLE PRECISION NOT NULL,
        tier TEXT NOT NULL, route TEXT NOT NULL, source TEXT NOT NULL, features TEXT NOT NULL)""",
    # Scores made many at a time (/score_columns, /score_batch, re-scores, ``leadscore score``): the same fields
    # as score_log's, one row per batch of up to BATCH_ROWS scores, the per-score fields as JSON arrays in
    # ``columns`` (``serving.log_rows.batches`` makes it; ``leadscore.score_rows.read`` reads both tables as one
    # log). Shipping 1,000 scores as score_log rows took 7.5 ms of a worker's CPU, a fifth of what serving them
    # cost; as one batch row, 0.6 ms.
    "score_batches": """CREATE TABLE IF NOT EXISTS score_batches (
        batch_id TEXT PRIMARY KEY, at TEXT NOT NULL, first_as_of TEXT NOT NULL, motion TEXT NOT NULL,
        model TEXT NOT NULL, version TEXT NOT NULL, source TEXT NOT NULL, n INTEGER NOT NULL, columns TEXT NOT NULL)""",
    "outcomes": """CREATE TABLE IF NOT EXISTS outcomes (
        outcome_key TEXT PRIMARY KEY, motion TEXT NOT NULL, entity_id TEXT NOT NULL, account_id TEXT,
        stage TEXT, purchased INTEGER, value DOUBLE PRECISION, occurred_at TEXT NOT NULL,
        contacted_at TEXT, ingested_at TEXT NOT NULL, source TEXT)""",
    # events taken in as they happen (POST /events, the stream consumer): one row per (motion, event_id), so a
    # retried event counts once; ``state`` is applied, or pending while its entity is unknown
    "events_in": """CREATE TABLE IF NOT EXISTS events_in (
        motion TEXT NOT NULL, event_id TEXT NOT NULL, entity_id TEXT NOT NULL, ts BIGINT NOT NULL,
        received_at TEXT NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (motion, event_id))""",
    # each entity's latest score, what a trigger compares a new score with (and what decay re-scores)
    "last_scores": """CREATE TABLE IF NOT EXISTS last_scores (
        motion TEXT NOT NULL, entity_id TEXT NOT NULL, account_id TEXT, scored_at BIGINT NOT NULL,
        score DOUBLE PRECISION NOT NULL, tier TEXT NOT NULL, route TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (motion, entity_id))""",
    # webhook notifications, written before the answer that caused them and delivered at least once;
    # ``dedupe_key`` (motion, entity, trigger, window) makes a second one for the same change impossible
    "outbox": """CREATE TABLE IF NOT EXISTS outbox (
        id {serial}, dedupe_key TEXT NOT NULL UNIQUE, url TEXT NOT NULL, body TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, attempts INTEGER NOT NULL, next_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL, last_error TEXT, sent_at DOUBLE PRECISION)""",
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
    # The log is read a motion at a time (feedback, optionally from an as-of on); rows arrive in about as-of
    # order, so this index grows at its end. An index on the entity put each row at a random place in a tree as large as the log:
    # 1,000 rows took 5 ms to ship into an empty log and 48 ms into one of 200,000 rows.
    "DROP INDEX IF EXISTS score_log_entity",
    "CREATE INDEX IF NOT EXISTS score_log_motion_as_of ON score_log (motion, as_of)",
    "CREATE INDEX IF NOT EXISTS score_batches_motion_as_of ON score_batches (motion, first_as_of)",
    "CREATE INDEX IF NOT EXISTS outcomes_entity ON outcomes (motion, entity_id, occurred_at)",
    # Events are read back by state only while they wait for their entity (almost every one is applied at once):
    # an index of the waiting ones alone, not one every event is inserted into at a random place.
    "DROP INDEX IF EXISTS events_in_entity",
    "CREATE INDEX IF NOT EXISTS events_in_waiting ON events_in (motion, entity_id) WHERE state <> 'applied'",
    # Events older than the longest feature window are deleted (``features.online_events.prune``); they arrive in
    # about time order, so this index grows at its end (1,000 events took 0.4 ms more to record with it).
    "CREATE INDEX IF NOT EXISTS events_in_age ON events_in (motion, ts)",
    "CREATE INDEX IF NOT EXISTS last_scores_age ON last_scores (motion, scored_at)",
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at)",
]


INSERT_SCORES = (
    f"INSERT INTO score_log ({', '.join(SCORE_LOG_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SCORE_LOG_COLUMNS))})"
)
# A score batch's own fields (one value per batch), then ``columns``: a JSON object of one array per score-log
# field that varies by score (request_id, as_of, entity_id, score, tier, route; ``as_of`` may be one text for the
# whole batch) and ``features``, an object of feature columns.
SCORE_BATCH_FIELDS = ("batch_id", "at", "first_as_of", "motion", "model", "version", "source", "n")
BATCH_SCORES = SCORE_BATCH_FIELDS.index("n")  # where a batch's tuple says how many scores it holds
INSERT_BATCHES = (
    f"INSERT INTO score_batches ({', '.join(SCORE_BATCH_FIELDS)}, columns) "
    f"VALUES ({', '.join('?' * (len(SCORE_BATCH_FIELDS) + 1))})"
)


def new_request_id() -> str:
    """The id of a score its caller did not name: 32 hex characters (a UUID's length), the first 12 the time in
    milliseconds, so the score log's unique index on request ids grows at its end (with random ids each row lands
    at a random place in a tree as large as the log: 1,000 rows into a 200,000-row log took 42 ms, not 6); then 48
    random bits drawn once per process (again in a forked child) and a counter, instead of reading the system's
    random source for every lead."""
    return f"{time.time_ns() // 1_000_000:012x}{_ids.prefix}{next(_ids.counter) & 0xFFFFFFFF:08x}"


class _Ids:
    def __init__(self) -> None:
        self.draw()

    def draw(self) -> None:
        self.prefix, self.counter = secrets.token_hex(6), itertools.count()


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.draw)


class StoreUnavailable(RuntimeError):
    """The store cannot be reached now; the operation may be tried again (a 503 at the service)."""


# SQLite's write path: a commit that takes the write-ahead log past ``wal_autocheckpoint`` pages copies them into
# the database file and syncs both, inside that commit. Contexts are rewritten whole (a few KB each) when events
# arrive, so at the default (1,000 pages, 4 MB) a large events body pays for a checkpoint in most of its commits;
# every 10,000 pages, a page rewritten many times between checkpoints is copied once. A page cache of 64 MB (grown
# only as used) keeps the contexts' index and hot pages in memory. Neither changes what a commit makes durable.
SQLITE_TUNING = ("PRAGMA wal_autocheckpoint=10000", "PRAGMA cache_size=-65536")


class Store:
    """A small, thread-safe store over SQLite (one connection) or PostgreSQL (a pool that reconnects).

    The schema is created on first successful use, so a store that is down when a service starts does not stop
    it; every operation raises when the database is unreachable and the next one tries again.
    """

    def __init__(self, url: str, ddl: list[str] | None = None, timeout: float = 5.0):
        """``ddl``: the tables to create on first use (default: the project's own). ``timeout``: seconds to wait for
        a PostgreSQL connection before an operation fails."""
        self.url, self.timeout = url, timeout
        self._lock = threading.RLock()
        self._ddl = ddl
        self._ready = False
        self._con: Any = None  # SQLite
        self._pool: Any = None  # PostgreSQL
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across crashes of the process
            for pragma in SQLITE_TUNING:
                self._con.execute(pragma)
            self.kind, self._serial = "sqlite", "INTEGER PRIMARY KEY AUTOINCREMENT"
        elif url.startswith(("postgresql://", "postgres://")):
            from psycopg_pool import ConnectionPool

            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=4,
                kwargs={"autocommit": True},
                open=False,
                check=ConnectionPool.check_connection,
                reconnect_timeout=0,
            )
            self._pool.open(wait=False)
            self.kind, self._serial = "postgres", "BIGSERIAL PRIMARY KEY"
        else:
            raise UserError(f"unsupported store URL {url!r} (sqlite:///path or postgresql://…)")
        try:
            self._ensure_schema()
        except (
            Exception
        ) as exc:  # PostgreSQL not reachable yet: created on the first operation that reaches it
            if self.kind == "sqlite":
                raise
            log.warning("store %s not reachable yet (%s)", redacted(url), exc)

    def _statements(self) -> list[str]:
        if self._ddl is not None:
            return self._ddl
        rowid = "INTEGER PRIMARY KEY" if self.kind == "sqlite" else self._serial
        return [d.format(serial=self._serial, rowid=rowid) for d in SCHEMA.values()] + INDEXES

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._connection() as con:
            for statement in self._statements():
                con.execute(statement)
            if self._ddl is None:
                _unique_request_ids(con, self._sql)
        self._ready = True

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A connection; a database that cannot be reached (or a locked SQLite file) is ``StoreUnavailable``."""
        try:
            if self._pool is not None:
                import psycopg
                from psycopg_pool import PoolTimeout

                try:
                    if not self._ready or self._pool.get_stats().get("pool_size", 1) == 0:
                        self._probe()
                    with self._pool.connection(timeout=self.timeout) as con:
                        yield con
                except (PoolTimeout, psycopg.OperationalError) as exc:
                    raise StoreUnavailable(f"the store {redacted(self.url)} is not reachable: {exc}") from exc
            else:
                with self._lock:
                    yield self._con
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "unable to open" not in str(exc):
                raise
            raise StoreUnavailable(f"the store {self.url} is not available: {exc}") from exc

    def _probe(self) -> None:
        """The database has not been reached yet, or the pool holds no connection (it was down): one direct
        attempt, so a refused connection fails the operation at once instead of after the pool's whole wait (a
        service starting, or stopping, with its store down would otherwise spend ``timeout`` seconds on every
        operation)."""
        import psycopg

        psycopg.connect(self.url, connect_timeout=max(1, round(self.timeout))).close()

    @classmethod
    def default(cls, settings: Settings | None = None) -> Store:
        return cls((settings or Settings.load()).store_url)

    @classmethod
    @contextmanager
    def borrowed(cls, store: Store | None, settings: Settings | None = None) -> Iterator[Store]:
        """``store`` as it is (its owner closes it), or the default store opened for the block and closed after
        it: a job that opens its own store leaves no PostgreSQL pool or connection behind."""
        if store is not None:
            yield store
            return
        own = cls.default(settings)
        try:
            yield own
        finally:
            own.close()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgres" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._ensure_schema()
        with self._connection() as con:
            return con.execute(self._sql(sql), tuple(params)).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """All rows in one transaction: either every row lands or none does. A row is any sequence (a tuple, or a
        list as a JSON array is decoded)."""
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return 0
        self._ensure_schema()
        with self._connection() as con:
            if self.kind == "sqlite":
                con.execute("BEGIN")
                try:
                    n = con.executemany(sql, rows).rowcount
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                return n
            with con.transaction(), con.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
                return cur.rowcount

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """Several statements that land together or not at all (SQLite: one writer at a time)."""
        self._ensure_schema()
        with self._connection() as con:
            if self.kind == "sqlite":
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield Tx(con, self._sql)
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                return
            with con.transaction(), con.cursor() as cur:
                yield Tx(cur, self._sql)

    def append_log(self, rows: Sequence[Sequence[Any]], batches: Sequence[Sequence[Any]]) -> int:
        """Score-log rows (``SCORE_LOG_COLUMNS``) and score batches (``SCORE_BATCH_FIELDS`` then the columns'
        JSON) in one transaction, each row whose request id, each batch whose id the store already has skipped:
        shipping the journal twice is harmless. The number of scores taken."""
        with self.transaction() as tx:
            n = tx.executemany(self._ignoring(INSERT_SCORES), rows) if rows else 0
            if batches:
                tx.executemany(self._ignoring(INSERT_BATCHES), batches)
        return n + sum(b[BATCH_SCORES] for b in batches)

    def _ignoring(self, insert: str) -> str:
        return insert.replace("INSERT INTO", self.insert_ignore(), 1) + self.on_conflict_ignore()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._ensure_schema()
        with self._connection() as con:
            cur = con.execute(self._sql(sql), tuple(params))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def query_tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """``query``'s rows as tuples in the selected order (no dict per row: the online store's hot read)."""
        self._ensure_schema()
        with self._connection() as con:
            return con.execute(self._sql(sql), tuple(params)).fetchall()

    def insert_ignore(self) -> str:
        """The portable 'insert unless the key exists' prefix/suffix pair is dialect-specific."""
        return "INSERT OR IGNORE INTO" if self.kind == "sqlite" else "INSERT INTO"

    def on_conflict_ignore(self) -> str:
        return "" if self.kind == "sqlite" else " ON CONFLICT DO NOTHING"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close(timeout=self.timeout)
        else:
            with self._lock:
                self._con.close()


class Tx:
    """Statements inside ``Store.transaction`` (``?`` placeholders, as everywhere in the store)."""

    def __init__(self, cur: Any, sql: Callable[[str], str]):
        self._cur, self._sql = cur, sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._cur.execute(self._sql(sql), tuple(params)).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        rows = [tuple(r) for r in rows]
        if not rows:
            return 0
        done = self._cur.executemany(self._sql(sql), rows)  # SQLite: a cursor; psycopg: None
        return (done if done is not None else self._cur).rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self._cur.execute(self._sql(sql), tuple(params))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _unique_request_ids(con: Any, sql: Callable[[str], str]) -> None:
    """A request id names one scoring: the score log holds it once (a retried request is the same request). A
    log written before this rule may hold repeats: the earliest row of each is kept."""
    try:
        con.execute("CREATE UNIQUE INDEX IF NOT EXISTS score_log_request ON score_log (request_id)")
    except Exception:
        con.execute(
            "DELETE FROM score_log WHERE id NOT IN (SELECT MIN(id) FROM score_log GROUP BY request_id)"
        )
        con.execute("CREATE UNIQUE INDEX IF NOT EXISTS score_log_request ON score_log (request_id)")


def redacted(url: str) -> str:
    """A URL without its password, for logs."""
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@") if password else url
