"""The score log, durable before a score is acknowledged: an append-only local journal, shipped to the store.

Every scored batch is one write to this process's journal segment (``LEADSCORE_HOME/journal``) before its
responses leave, so killing the process loses nothing that was answered; the segment is flushed to the disk
(``fdatasync``: the data and the size that finds it, not the times — an fsync per second cost about a tenth of
/score's throughput in an A/B on this machine, fdatasync was level with no journal) every
``journal_fsync_seconds`` (0: on every write) for power loss. A shipper thread copies new journal lines into the
store (a score's row into ``score_log``, a columnar batch's line into ``score_batches``) and records how far it
got beside the segment; the insert ignores request ids and batch ids the store already has, so shipping a line
twice (after a crash between the insert and the position) is harmless. When the
store is down, rows wait in the journal (up to ``journal_max_mb`` of unshipped rows; past that, scoring is
refused rather than acknowledged without a durable row) and are shipped when it returns.

Each process owns its segments through an exclusive ``flock``; a segment whose lock is free belonged to a process
that died, and the next shipper to find it ships what is left and removes it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from leadscore.store import BATCH_SCORES, Store

if TYPE_CHECKING:
    from serving.journal_off import MemoryScoreLog

log = logging.getLogger("leadscore.scorelog")
SHIP_ROWS = 2000  # rows per store transaction
SEGMENT_BYTES = 64 * 2**20  # a fully shipped active segment larger than this is replaced by a new one
CLAIM_SECONDS = 10.0  # how often a shipper looks for segments of processes that died
# The shipper runs every ``interval`` seconds and ships everything new in a few large transactions; only a
# backlog this large wakes it early. (Woken by every scored batch, it made one tiny transaction and one position
# file per batch, hundreds a second, and took the scoring thread's time.)
WAKE_BYTES = 4 * 2**20
# Batches appended by this process are also kept as rows (up to this many journal bytes) and shipped from memory:
# reading the lines back and parsing them cost 3.4 µs a row, a third of the insert. The journal file stays the
# durable copy; what memory does not hold (past the cap, after a restart, a dead process's segment) is read from it.
HELD_BYTES = 32 * 2**20
# Journal bytes read back at a time (more when one line, a large score batch, is longer).
READ_BYTES = 8 * 2**20


class JournalFull(RuntimeError):
    """More unshipped score-log rows than the journal's disk cap: scoring must wait for the store (a 503)."""


@dataclass
class _Segment:
    path: Path
    fd: int  # holds the segment's flock for as long as this process owns it
    shipped: int  # bytes of whole lines already in the store
    size: int  # bytes in the segment (kept as it is written: no stat on the scoring path)
    held: deque[tuple[int, int, list[tuple], list[tuple]]] = field(
        default_factory=deque
    )  # (start, end, rows, batches) still in memory

    @property
    def position_file(self) -> Path:
        return self.path.with_suffix(".pos")

    def save_position(self) -> None:
        tmp = self.path.with_suffix(".pos.tmp")
        tmp.write_text(str(self.shipped))
        os.replace(tmp, self.position_file)


def _read_position(path: Path) -> int:
    try:
        return int(path.with_suffix(".pos").read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


class ScoreLog:
    """``append`` (durable, called where scores are made) and a shipper thread (``start``) to the store."""

    def __init__(
        self,
        store: Store,
        home: Path,
        fsync_seconds: float = 1.0,
        max_mb: float = 1024,
        interval: float = 0.25,
    ):
        self.store, self.interval, self.fsync_seconds = store, interval, fsync_seconds
        self.max_bytes = int(max_mb * 2**20)
        self.dir = home / "journal"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the active segment: appends and rotation
        self._owned: list[_Segment] = []  # segments this process ships (the active one last)
        self._active = self._new_segment()
        self._dirty = False
        self._held_bytes = 0  # journal bytes whose rows are also held in memory (segments' ``held``)
        self._last_sync = time.monotonic()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0  # rows this process shipped
        self.store_errors = 0  # failed store writes (each retried)
        self.store_ok = True  # the last store write succeeded
        self._claim_orphans()

    # -- writing
    def _new_segment(self) -> _Segment:
        path = self.dir / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        seg = _Segment(path, fd, 0, 0)
        self._owned.append(seg)
        return seg

    def append(self, batch: list[tuple]) -> None:
        """Write a batch's rows to the journal: on return they survive a kill of this process."""
        if batch:
            self._write(b"".join(orjson.dumps(r) + b"\n" for r in batch), list(batch), [])

    def append_batches(self, batches: list[tuple]) -> None:
        """Write score batches (``serving.log_rows.batches``) to the journal, one line each: on return they
        survive a kill of this process."""
        if batches:
            self._write(b"".join(_batch_line(b) for b in batches), [], list(batches))

    def _write(self, data: bytes, rows: list[tuple], batches: list[tuple]) -> None:
        with self._lock:
            backlog = self.unshipped_bytes() + len(
                data
            )  # once per batch: the cap, then the shipper's wake-up
            if backlog > self.max_bytes:
                raise JournalFull(
                    f"the score-log journal holds {(backlog - len(data)) / 2**20:.0f} MB not yet "
                    f"in the store (cap {self.max_bytes / 2**20:.0f} MB): is the store down?"
                )
            view = memoryview(data)
            while view:
                view = view[os.write(self._active.fd, view) :]
            start = self._active.size
            self._active.size += len(data)
            if self._held_bytes + len(data) <= HELD_BYTES:
                self._active.held.append((start, start + len(data), rows, batches))
                self._held_bytes += len(data)
            self._dirty = True
            if self.fsync_seconds <= 0:
                os.fdatasync(self._active.fd)
                self._dirty = False
        if backlog >= WAKE_BYTES:  # otherwise the shipper's next round (every ``interval``) takes these rows
            self._wake.set()

    def sync(self) -> None:
        """fsync the active segment if it was written since the last fsync — outside the lock, so appends on the
        scoring path never wait for the disk (an fsync covers every write made before it started)."""
        with self._lock:
            fd, dirty = self._active.fd, self._dirty
            self._dirty = False
            self._last_sync = time.monotonic()
        if dirty:
            os.fdatasync(fd)  # the fd stays open: only this (the shipper's) thread retires segments

    def unshipped_bytes(self) -> int:
        return sum(max(0, s.size - s.shipped) for s in self._owned)

    def full(self) -> bool:
        """Within a megabyte of the cap: the next batch would likely be refused."""
        return self.unshipped_bytes() + 2**20 > self.max_bytes

    # -- shipping
    def start(self) -> ScoreLog:
        self._thread = threading.Thread(target=self._run, name="score-log-shipper", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        backoff, last_claim = self.interval, time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            if self.fsync_seconds > 0 and time.monotonic() - self._last_sync >= self.fsync_seconds:
                self.sync()
            if time.monotonic() - last_claim >= CLAIM_SECONDS:
                self._claim_orphans()
                last_claim = time.monotonic()
            backoff = self.interval if self.ship() else min(max(backoff * 2, 0.1), 5.0)

    def wait_below(self, most: int, timeout: float = 60.0) -> bool:
        """Backpressure for a writer faster than the store: wake the shipper and wait (at most ``timeout``) until
        fewer than ``most`` bytes are unshipped. False if they are not (the store is down or slow)."""
        deadline = time.monotonic() + timeout
        while self.unshipped_bytes() >= most and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        return self.unshipped_bytes() < most

    def ship(self, deadline: float | None = None) -> bool:
        """Copy every owned segment's new lines to the store; False if the store refused (rows stay)."""
        for seg in list(self._owned):
            while True:
                rows, batches, end = self._held_rows(seg)
                if not rows and not batches:
                    lines, end = _whole_lines(seg.path, seg.shipped, SHIP_ROWS)
                    if not lines:
                        break
                    rows, batches = _parsed(lines)
                try:
                    scores = self.store.append_log(rows, batches)
                except Exception as exc:  # the store is down or busy: keep the rows, try again later
                    self.store_errors += 1
                    self.store_ok = False
                    log.warning(
                        "score log: store write failed (%s); %d bytes wait in the journal",
                        exc,
                        self.unshipped_bytes(),
                    )
                    return False
                self.store_ok = True
                seg.shipped = end
                seg.save_position()
                self.written += scores
                if deadline is not None and time.monotonic() > deadline:
                    return True
            self._retire(seg)
        return True

    def _held_rows(self, seg: _Segment) -> tuple[list[tuple], list[tuple], int]:
        """The rows and score batches held in memory from ``seg.shipped`` on (whole appended writes, about
        SHIP_ROWS scores) and the byte they end at; none when memory does not hold what comes next (it is read
        from the file). Writes the file reading already shipped are let go."""
        rows: list[tuple] = []
        batches: list[tuple] = []
        end, scores = seg.shipped, 0
        with self._lock:
            held = seg.held
            while held and held[0][0] < end:  # shipped from the file (a read that ran into held batches)
                start, stop, _, _ = held.popleft()
                self._held_bytes -= stop - start
            while held and held[0][0] == end and scores < SHIP_ROWS:
                start, end, r, b = held.popleft()
                self._held_bytes -= end - start
                rows.extend(r)
                batches.extend(b)
                scores += len(r) + sum(x[BATCH_SCORES] for x in b)
        return rows, batches, end

    def _retire(self, seg: _Segment, closing: bool = False) -> None:
        """Remove a fully shipped segment that is not being written (or the active one, once it is large, or
        when this process stops writing)."""
        with self._lock:
            if seg is self._active and not closing:
                if seg.shipped < SEGMENT_BYTES or seg.size != seg.shipped:
                    return
                self._active = self._new_segment()
            if seg.size != seg.shipped:
                return
            self._owned.remove(seg)
            self._held_bytes -= sum(held[1] - held[0] for held in seg.held)
            seg.held.clear()
        seg.path.unlink(missing_ok=True)
        seg.position_file.unlink(missing_ok=True)
        os.close(seg.fd)

    def _claim_orphans(self) -> None:
        """Take over the segments of processes that died (their flock is free)."""
        mine = {s.path for s in self._owned}
        for path in sorted(self.dir.glob("*.jsonl")):
            if path in mine:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live process owns it
                os.close(fd)
                continue
            if not path.exists():  # retired by its owner between the glob and the lock
                os.close(fd)
                continue
            with self._lock:
                self._owned.insert(0, _Segment(path, fd, _read_position(path), _size(path)))
            log.info("score log: shipping the journal segment %s left by a stopped process", path.name)

    def status(self) -> dict[str, Any]:
        return {
            "journal_unshipped_bytes": self.unshipped_bytes(),
            "journal_segments": len(self._owned),
            "journal_cap_bytes": self.max_bytes,
            "journal": "on",
            "score_log_written": self.written,
            "store_ok": self.store_ok,
            "store_errors": self.store_errors,
        }

    def close(self, timeout: float = 5.0) -> None:
        """Stop the shipper, fsync, and ship what the store takes within ``timeout``; the rest stays in the
        journal for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.sync()
        if self.ship(deadline=time.monotonic() + timeout):
            self._retire(self._active, closing=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _whole_lines(path: Path, start: int, most: int) -> tuple[list[bytes], int]:
    """Up to ``most`` complete lines from byte ``start`` (a line still being written is left for later; a line
    longer than a read, a large score batch, is read whole)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        chunk = fh.read(READ_BYTES)
        end = chunk.rfind(b"\n")
        while end < 0:
            more = fh.read(READ_BYTES)
            if not more:
                return [], start
            end = more.rfind(b"\n")
            end = end if end < 0 else len(chunk) + end
            chunk += more
    lines = chunk[:end].split(b"\n", most)  # at most ``most`` whole lines split off, the rest left as one
    if len(lines) > most:
        lines = lines[:most]
        return lines, start + sum(len(x) + 1 for x in lines)
    return lines, start + end + 1


def _batch_line(batch: tuple) -> bytes:
    """A score batch's journal line: an object (a score's line is an array), its columns' JSON as they are."""
    return b'{"batch":' + orjson.dumps(batch[:-1]) + b',"columns":' + batch[-1].encode() + b"}\n"


def _parsed(lines: list[bytes]) -> tuple[list[tuple], list[tuple]]:
    """Journal lines read back: score-log rows, and score batches with their columns' JSON as text again."""
    rows = [x for x in lines if not x.startswith(b"{")]
    batches = [orjson.loads(x) for x in lines if x.startswith(b"{")]
    return (
        [tuple(r) for r in orjson.loads(b"[" + b",".join(rows) + b"]")] if rows else [],
        [(*b["batch"], orjson.dumps(b["columns"]).decode()) for b in batches],
    )


def open_score_log(store: Store, settings: Any) -> ScoreLog | MemoryScoreLog:
    """The score log the settings ask for: the durable journal (default) or, with ``LEADSCORE_JOURNAL=false``,
    rows kept in memory."""
    from serving.journal_off import MemoryScoreLog

    if settings.journal:
        return ScoreLog(store, settings.home, settings.journal_fsync_seconds, settings.journal_max_mb)
    log.warning(
        "LEADSCORE_JOURNAL=false: scores are acknowledged before they are on disk; a crash loses the last ones"
    )
    return MemoryScoreLog(store, settings.journal_max_mb)
