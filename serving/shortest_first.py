"""One worker thread that runs the smallest waiting job first (``POST /events`` bodies).

A FIFO thread makes a one-event body — the abandoned cart whose webhook should leave within a second — wait
behind every 1,000-event body queued before it; here it waits for the part of a job in progress only: a large job
calls ``yield_to`` between its parts, which runs the smaller jobs waiting then. Jobs of equal size run in the
order they came; a large one is not starved for good, as the queue empties whenever the load pauses.

``nice``: added to the thread's nice value (Linux, where each thread has its own): when the cores are full, the
kernel gives them to the process's other threads and to other processes first (a service worker's ``/score``
requests, before its events).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("leadscore.serving")


def lower_priority(nice: int) -> None:
    """The calling thread's nice value raised by ``nice`` (at most 19), on Linux; elsewhere (where a thread id is
    not a scheduling target of its own) nothing changes."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # a sandbox that forbids it: the thread keeps the process's priority
        log.warning("the %s thread's priority was not lowered: %s", threading.current_thread().name, exc)


class ShortestFirst:
    def __init__(self, name: str, nice: int = 0):
        self._nice = nice
        self._heap: list[tuple[int, int, Future, Callable[..., Any], tuple]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, size: int, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` on the worker thread once no smaller job waits; ``size``: e.g. the events it takes."""
        fut: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the executor is shut down")
            heapq.heappush(self._heap, (size, next(self._order), fut, fn, args))
            self._cond.notify()
        return fut

    def waiting(self) -> int:
        return len(self._heap)

    def yield_to(self, size: int) -> int:
        """From a job on the worker thread, between its parts: run the waiting jobs smaller than ``size`` now.
        Returns how many ran."""
        ran = 0
        while True:
            with self._cond:
                if not self._heap or self._heap[0][0] >= size:
                    return ran
                _, _, fut, fn, args = heapq.heappop(self._heap)
            _run_one(fut, fn, args)
            ran += 1

    def shutdown(self, wait: bool = True) -> None:
        """No new jobs; the waiting ones still run (``wait``: until they have)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if wait:
            self._thread.join()

    def _run(self) -> None:
        lower_priority(self._nice)
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if not self._heap:
                    return
                _, _, fut, fn, args = heapq.heappop(self._heap)
            _run_one(fut, fn, args)


def _run_one(fut: Future, fn: Callable[..., Any], args: tuple) -> None:
    if not fut.set_running_or_notify_cancel():
        return
    try:
        fut.set_result(fn(*args))
    except BaseException as exc:  # the caller gets it from the future
        fut.set_exception(exc)
