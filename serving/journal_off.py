"""``LEADSCORE_JOURNAL=false``: the score log kept in memory instead of the durable journal (``score_log``), to
measure what durability costs and for throwaway runs."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from leadscore.store import Store
from serving.score_log import SHIP_ROWS, WAKE_BYTES, JournalFull

log = logging.getLogger("leadscore.scorelog")


class MemoryScoreLog:
    """``LEADSCORE_JOURNAL=false``: the score log without its journal — rows wait in memory for the shipper, so
    a process that dies loses the scores it acknowledged in its last moments (and a store outage longer than the
    cap allows). It exists to measure what durability costs (``make bench``) and for throwaway runs; the service
    warns at start when it is used. Same interface as ``ScoreLog``; the cap counts rows at about 1 KB each."""

    def __init__(self, store: Store, max_mb: float = 1024, interval: float = 0.25):
        self.store, self.interval = store, interval
        self.max_rows = max(1, int(max_mb * 1024))
        self._rows: list[tuple] = []
        self._lock = threading.Lock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self.written = self.store_errors = 0
        self.store_ok = True

    def append(self, batch: list[tuple]) -> None:
        with self._lock:
            if len(self._rows) + len(batch) > self.max_rows:
                raise JournalFull(
                    f"{len(self._rows):,} score-log rows wait in memory for the store: is it down?"
                )
            self._rows.extend(batch)
            backlog = len(self._rows)
        if backlog * 1024 >= WAKE_BYTES:
            self._wake.set()

    def unshipped_bytes(self) -> int:
        return len(self._rows) * 1024

    def full(self) -> bool:
        return len(self._rows) >= self.max_rows

    def start(self) -> MemoryScoreLog:
        self._thread = threading.Thread(target=self._run, name="score-log-shipper", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self.ship():
                self._stop.wait(1.0)

    def ship(self, deadline: float | None = None) -> bool:
        while self._rows:
            with self._lock:
                batch, self._rows = self._rows[:SHIP_ROWS], self._rows[SHIP_ROWS:]
            try:
                self.store.append_scores(batch, ignore_existing=True)
            except Exception as exc:
                with self._lock:
                    self._rows[:0] = batch
                self.store_errors += 1
                self.store_ok = False
                log.warning(
                    "score log: store write failed (%s); %d rows wait in memory", exc, len(self._rows)
                )
                return False
            self.store_ok = True
            self.written += len(batch)
            if deadline is not None and time.monotonic() > deadline:
                return True
        return True

    def status(self) -> dict[str, Any]:
        return {
            "journal_unshipped_bytes": self.unshipped_bytes(),
            "journal_segments": 0,
            "journal_cap_bytes": self.max_rows * 1024,
            "journal": "off",
            "score_log_written": self.written,
            "store_ok": self.store_ok,
            "store_errors": self.store_errors,
        }

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.ship(deadline=time.monotonic() + timeout)
        if self._rows:
            log.error(
                "score log: %d acknowledged scores were not shipped and are lost (journal off)",
                len(self._rows),
            )
