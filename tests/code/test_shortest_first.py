"""The events thread's queue: the smallest waiting job first, equal sizes in order, errors to their caller."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from serving.shortest_first import ShortestFirst


def test_the_smallest_waiting_job_runs_first_and_equal_ones_in_order():
    pool, started, gate, ran = ShortestFirst("t"), threading.Event(), threading.Event(), []
    first = pool.submit(1000, lambda: started.set() or gate.wait())  # in progress while the others queue
    assert started.wait(5)
    futures = [pool.submit(size, ran.append, name) for size, name in
               [(1000, "big"), (1, "probe"), (256, "part-a"), (256, "part-b"), (3, "small")]]  # fmt: skip
    assert pool.waiting() == 5 and ran == []
    gate.set()
    for f in [first, *futures]:
        f.result(timeout=5)
    assert ran == ["probe", "small", "part-a", "part-b", "big"]
    pool.shutdown()


def test_a_failing_job_fails_its_own_future_and_the_thread_goes_on():
    pool = ShortestFirst("t")
    bad = pool.submit(1, lambda: 1 / 0)
    good = pool.submit(2, lambda: 42)
    with pytest.raises(ZeroDivisionError):
        bad.result(timeout=5)
    assert good.result(timeout=5) == 42
    pool.shutdown()


def test_shutdown_runs_what_waits_then_refuses_new_jobs():
    pool, gate, ran = ShortestFirst("t"), threading.Event(), []
    pool.submit(1, gate.wait)
    pool.submit(5, ran.append, "queued")
    gate.set()
    pool.shutdown(wait=True)
    assert ran == ["queued"]
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(1, ran.append, "late")


def test_a_large_job_lets_the_smaller_waiting_ones_run_between_its_parts():
    pool, started, gate, ran = ShortestFirst("t"), threading.Event(), threading.Event(), []

    def large() -> None:
        started.set()
        gate.wait()
        for part in ("part-1", "part-2"):
            pool.yield_to(256)  # only jobs smaller than a part go first
            ran.append(part)

    job = pool.submit(1000, large)
    assert started.wait(5)
    futures = [
        pool.submit(size, ran.append, name) for size, name in [(1, "probe"), (300, "medium"), (5, "small")]
    ]
    gate.set()
    for f in [job, *futures]:
        f.result(timeout=5)
    assert ran == ["probe", "small", "part-1", "part-2", "medium"]
    pool.shutdown()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_nice_lowers_the_worker_thread_alone_and_stops_at_19():
    def own() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    base = own()
    low, lowest, plain = ShortestFirst("t", nice=3), ShortestFirst("t", nice=40), ShortestFirst("t")
    assert low.submit(1, own).result(timeout=5) == min(19, base + 3)
    assert lowest.submit(1, own).result(timeout=5) == 19
    assert plain.submit(1, own).result(timeout=5) == base
    assert own() == base  # the caller's thread (and so the process's others) keep their priority
    for pool in (low, lowest, plain):
        pool.shutdown()
