"""``LEADSCORE_JOURNAL=false``: the score log kept in memory instead of the durable journal (``score_log``), to
measure what durability costs and for throwaway runs."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from leadscore.store import BATCH_SCORES, Store
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
        self._batches: list[tuple] = []  # score batches, counted in the cap by their scores
        self._lock = threading.Lock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self.written = self.store_errors = 0
        self.store_ok = True

    def append(self, batch: list[tuple]) -> None:
        self._hold(batch, [])

    def append_batches(self, batches: list[tuple]) -> None:
        self._hold([], batches)

    def _hold(self, rows: list[tuple], batches: list[tuple]) -> None:
        with self._lock:
            waiting = self._waiting()
            if waiting + len(rows) + sum(b[BATCH_SCORES] for b in batches) > self.max_rows:
                raise JournalFull(f"{waiting:,} score-log rows wait in memory for the store: is it down?")
            self._rows.extend(rows)
            self._batches.extend(batches)
            backlog = self._waiting()
        if backlog * 1024 >= WAKE_BYTES:
            self._wake.set()

    def _waiting(self) -> int:
        return len(self._rows) + sum(b[BATCH_SCORES] for b in self._batches)

    def unshipped_bytes(self) -> int:
        return self._waiting() * 1024

    def full(self) -> bool:
        return self._waiting() >= self.max_rows

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
        while self._rows or self._batches:
            with self._lock:
                rows, self._rows = self._rows[:SHIP_ROWS], self._rows[SHIP_ROWS:]
                batches, self._batches = self._batches[:4], self._batches[4:]
            try:
                self.written += self.store.append_log(rows, batches)
            except Exception as exc:
                with self._lock:
                    self._rows[:0] = rows
                    self._batches[:0] = batches
                self.store_errors += 1
                self.store_ok = False
                log.warning(
                    "score log: store write failed (%s); %d rows wait in memory", exc, self._waiting()
                )
                return False
            self.store_ok = True
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
        if self._rows or self._batches:
            log.error(
                "score log: %d acknowledged scores were not shipped and are lost (journal off)",
                self._waiting(),
            )
