"""Adaptive batching for single-lead requests, without a fixed wait.

Requests that arrive while a batch is being scored form the next batch, so a quiet service answers each request
at once and a busy one amortises feature computation and the model call over everything in flight. One
scoring thread runs the batches; the event loop keeps accepting and parsing requests meanwhile. A bad item
never fails its neighbours: if a batch raises an item's error, its items are scored one by one and each gets its
own answer; any other error (a full journal, an outage) is every item's answer at once, not a retry per item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(RuntimeError):
    """More requests waiting than the batcher holds: the caller should come back shortly (a 503)."""


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        score: Callable[[list[T]], list[R]],
        executor: Executor,
        max_batch: int = 256,
        max_pending: int = 4096,
        item_errors: tuple[type[Exception], ...] = (Exception,),
    ):
        self.score, self.executor, self.max_batch, self.max_pending = score, executor, max_batch, max_pending
        self.item_errors = item_errors  # what one bad item raises; anything else fails the batch as it is
        self._pending: list[tuple[T, asyncio.Future]] = []
        self._running = False
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        if len(self._pending) >= self.max_pending:
            raise Overloaded(f"{len(self._pending)} requests are waiting to be scored; try again shortly")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                outcomes = await loop.run_in_executor(self.executor, self._score, [i for i, _ in batch])
                self.batches += 1
                self.items += len(batch)
                for (_, fut), out in zip(batch, outcomes, strict=True):
                    if fut.done():  # the caller went away
                        continue
                    if isinstance(out, BaseException):
                        fut.set_exception(out)
                    else:
                        fut.set_result(out)
        finally:
            self._running = False

    def _score(self, items: list[T]) -> list[Any]:
        try:
            return list(self.score(items))
        except Exception as exc:
            if len(items) == 1 or not isinstance(exc, self.item_errors):
                return [exc] * len(items)
        out: list[Any] = []
        for item in items:
            try:
                out.append(self.score([item])[0])
            except Exception as exc:
                out.append(exc)
        return out
