"""Stage-by-stage progress of long jobs as log records (``leadscore.progress``): a job names the stage it is in;
whoever runs it decides how to show that — the CLI draws it with rich on a terminal and writes one line per stage
to a log file; a library caller sees ordinary log records, or nothing."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("leadscore.progress")


@contextmanager
def stage(name: str) -> Iterator[None]:
    """``with stage("features"): ...`` — records the start and, with its duration, the end of a stage."""
    log.info("%s", name, extra={"stage": name, "state": "start"})
    t0 = time.perf_counter()
    yield
    seconds = time.perf_counter() - t0
    log.info("%s (%.1f s)", name, seconds, extra={"stage": name, "state": "done", "seconds": seconds})


@contextmanager
def steps() -> Iterator[Callable[[str], None]]:
    """``with steps() as step: step("features"); ...; step("scoring")`` — each call ends the stage before it, the
    end of the block ends the last one (for a long function whose stages follow one another)."""
    current: list[Any] = []

    def step(name: str) -> None:
        if current:
            current.pop().__exit__(None, None, None)
        current.append(stage(name))
        current[-1].__enter__()

    try:
        yield step
    except BaseException:
        if current:  # the stage that failed ends without a "done" record
            current.pop().__exit__(*sys.exc_info())
        raise
    if current:
        current.pop().__exit__(None, None, None)
