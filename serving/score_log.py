"""The score log, written off the request path: a queue drained by one thread in batches, flushed on close.

A failed write is retried (rows stay queued), so a burst of responses maps to the same number of rows.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime
from typing import Any

import orjson

from leadscore.store import Store
from leadscore.times import format_utc

log = logging.getLogger("leadscore.scorelog")


def rows(results: list[dict[str, Any]], source: str) -> list[tuple]:
    """Score-log rows for a batch of scorer results: one clock reading, each distinct as-of formatted once."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    as_of = {t: format_utc(t) for t in {r["_as_of"] for r in results}}
    return [
        (
            r["request_id"],
            at,
            as_of[r["_as_of"]],
            r["motion"],
            r["lead_id"],
            r["model"],
            r["version"],
            r["score"],
            r["tier"],
            r["route"],
            source,
            orjson.dumps(r["_features"], option=orjson.OPT_SERIALIZE_NUMPY).decode(),
        )  # NaN -> null
        for r in results
    ]


class ScoreLog:
    def __init__(self, store: Store, interval: float = 0.25, batch: int = 2000):
        self.store, self.interval, self.batch = store, interval, batch
        self._q: queue.Queue[list[tuple] | None] = queue.Queue()  # one item per scored batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="score-log", daemon=True)
        self._thread.start()
        self.written = 0

    def append(self, rows: list[tuple]) -> None:
        if rows:
            self._q.put(rows)

    def _drain(self, first: list[tuple]) -> list[tuple]:
        rows = list(first)
        while len(rows) < self.batch:
            try:
                more = self._q.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._q.put(None)
                break
            rows += more
        return rows

    def _write(self, rows: list[tuple]) -> None:
        for attempt in range(20):
            try:
                self.store.append_scores(rows)
                self.written += len(rows)
                return
            except Exception as exc:  # database busy or briefly away: retry, never drop
                log.warning("score log write failed (%s), retry %d", exc, attempt + 1)
                threading.Event().wait(min(0.1 * 2**attempt, 5))
        log.error("score log: %d rows could not be written", len(rows))

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            # Let rows accumulate for one interval: a few commits a second instead of one per request.
            if len(item) < self.batch:
                self._stop.wait(self.interval)
            self._write(self._drain(item))

    def close(self, timeout: float = 30) -> None:
        self._stop.set()
        self._q.put(None)
        self._thread.join(timeout)
        rest: list[tuple] = []
        while not self._q.empty():
            more = self._q.get_nowait()
            if more is not None:
                rest += more
        if rest:
            self._write(rest)
