"""Adaptive batching: concurrent requests share batches, answers go to their own callers, a bad item fails alone."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving.micro_batcher import MicroBatcher


def test_concurrent_requests_are_scored_together_and_answered_in_order():
    gate = threading.Event()
    calls: list[list[int]] = []

    def score(items: list[int]) -> list[int]:
        gate.wait(5)  # the first batch is held until everyone has queued behind it
        calls.append(list(items))
        return [x * 10 for x in items]

    async def main() -> list[int]:
        b = MicroBatcher(score, ThreadPoolExecutor(1), max_batch=16)
        tasks = [asyncio.create_task(b.submit(0))]
        await asyncio.sleep(0.05)  # the first request is being scored (held at the gate) ...
        tasks += [asyncio.create_task(b.submit(i)) for i in range(1, 40)]  # ... while 39 more arrive
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [i * 10 for i in range(40)]
    assert calls[0] == [0]  # a quiet service answers at once
    assert [len(c) for c in calls[1:]] == [16, 16, 7]  # then everything queued meanwhile, in capped batches
    assert sorted(x for c in calls for x in c) == list(range(40))


def test_a_bad_item_fails_alone():
    def score(items: list[int]) -> list[int]:
        if any(x < 0 for x in items):
            raise ValueError(f"negative in {items}")
        return [x + 1 for x in items]

    async def main():
        b = MicroBatcher(score, ThreadPoolExecutor(1), max_batch=8)
        return await asyncio.gather(*(b.submit(x) for x in [1, -2, 3, 4]), return_exceptions=True)

    out = asyncio.run(main())
    assert out[0] == 2 and out[2] == 4 and out[3] == 5
    assert isinstance(out[1], ValueError) and "[-2]" in str(out[1])


def test_an_error_on_a_single_item_reaches_its_caller():
    async def main():
        b = MicroBatcher(lambda items: 1 / 0, ThreadPoolExecutor(1))
        await b.submit(1)

    with pytest.raises(ZeroDivisionError):
        asyncio.run(main())


def test_past_its_capacity_the_batcher_refuses_instead_of_queueing():
    from serving.micro_batcher import Overloaded

    release = threading.Event()

    def slow(items):
        release.wait(5)
        return items

    async def main():
        b = MicroBatcher(slow, ThreadPoolExecutor(1), max_batch=2, max_pending=3)
        waiting = [asyncio.create_task(b.submit(i)) for i in range(3)]
        await asyncio.sleep(0.05)  # 2 are being scored, 1 waits
        waiting += [asyncio.create_task(b.submit(i)) for i in range(3, 5)]
        await asyncio.sleep(0.05)  # 3 wait: the batcher is full
        with pytest.raises(Overloaded):
            await b.submit(99)
        release.set()
        return await asyncio.gather(*waiting)

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_an_error_that_is_not_an_items_fails_the_batch_once_instead_of_a_retry_per_item():
    calls: list[int] = []

    def score(items):
        calls.append(len(items))
        raise RuntimeError("journal full")

    async def main():
        b = MicroBatcher(score, ThreadPoolExecutor(1), max_batch=8, item_errors=(ValueError,))
        return await asyncio.gather(*(b.submit(i) for i in range(5)), return_exceptions=True)

    out = asyncio.run(main())
    assert all(isinstance(x, RuntimeError) for x in out) and len(out) == 5
    assert sum(calls) <= 5 and all(n > 0 for n in calls) and len(calls) < 5  # no second pass item by item
