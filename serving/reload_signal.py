"""``POST /admin/reload`` reaches every worker, not only the one that took the request.

The request moves a generation number in ``LEADSCORE_HOME/workers/generation``; every worker watches it (a file
read every quarter second, beside its slower poll of the registry), reloads when it moves and says so in
``workers/<pid>.ack``. The worker that took the request waits until every live worker has acknowledged the new
generation (or a deadline passes) and answers with how many did.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

WATCH_SECONDS = 0.25  # how often a worker looks at the generation
# seconds before a champion that failed to load is tried again (then doubled, up to the poll)
RETRY_FIRST = 1.0
log = logging.getLogger("leadscore.serving")


class ReloadSignal:
    def __init__(self, home: Path):
        self.dir = home / "workers"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.file = self.dir / "generation"
        self._acking = threading.Lock()  # the request's thread and the watcher both acknowledge
        self.seen = self.current()
        self.ack(self.seen)

    def current(self) -> int:
        try:
            return int(self.file.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def request(self) -> int:
        """Move the generation on (one writer at a time); the new generation."""
        with open(self.dir / "generation.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            generation = self.current() + 1
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(str(generation))
            os.replace(tmp, self.file)
        return generation

    def pending(self) -> int | None:
        """A generation this worker has not reloaded for yet, if there is one."""
        generation = self.current()
        return generation if generation > self.seen else None

    def ack(self, generation: int) -> None:
        """Say this worker serves ``generation`` (or a later one it has seen). One thread at a time: the worker
        that took ``/admin/reload`` and its watcher may acknowledge at once, and both write through one temporary
        file (unguarded, the second rename found it gone: a 500 for the request)."""
        with self._acking:
            self.seen = max(self.seen, generation)
            tmp = self.dir / f"{os.getpid()}.tmp"
            tmp.write_text(str(self.seen))
            os.replace(tmp, self.dir / f"{os.getpid()}.ack")

    def wait_all(self, generation: int, seconds: float) -> tuple[int, int]:
        """Wait (at most ``seconds``) until every live worker has acknowledged ``generation``: (how many have,
        how many workers there are). The files of workers that died are removed."""
        deadline = time.monotonic() + seconds
        while True:
            acks = {}
            for path in self.dir.glob("*.ack"):
                pid = int(path.stem)
                if not _alive(pid):
                    path.unlink(missing_ok=True)
                    continue
                try:
                    acks[pid] = int(path.read_text() or 0)
                except (FileNotFoundError, ValueError):
                    acks[pid] = 0
            done = sum(g >= generation for g in acks.values())
            if done == len(acks) or time.monotonic() >= deadline:
                return done, len(acks)
            time.sleep(0.05)


def watch(
    signal: ReloadSignal,
    reload: Callable[[], object],
    every: float,
    stop: threading.Event,
    failing: Callable[[], bool] = lambda: False,
) -> None:
    """A worker's champion poll: ``reload`` every ``every`` seconds, and at once when ``/admin/reload`` asks every
    worker to (then acknowledged). A failed reload keeps the loaded champions serving. While a champion failed to
    load (``failing``: a registry outage, a copy being placed), it is tried again sooner: after 1 s, 2 s, 4 s …
    up to ``every``, so a worker that started without its model does not wait a whole poll for it."""
    last, wait = time.monotonic(), min(every, RETRY_FIRST) if failing() else every
    while not stop.wait(WATCH_SECONDS):
        asked = signal.pending()
        if asked is None and time.monotonic() - last < wait:
            continue
        last = time.monotonic()
        try:
            reload()
        except Exception as exc:  # the registry is unreachable: tried again at the next round
            log.warning("champion reload failed: %s", exc)
            wait = _sooner(wait, every)
            continue
        wait = _sooner(wait, every) if failing() else every
        if asked is not None:
            signal.ack(asked)


def _sooner(wait: float, every: float) -> float:
    """The next wait after a failed round: ``RETRY_FIRST`` after a full poll, else doubled, at most ``every``."""
    return min(every, RETRY_FIRST if wait >= every else 2 * wait)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
