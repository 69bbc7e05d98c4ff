"""The event pipeline outside the service: a Redis Stream consumer (``leadscore events consume``) and decay
re-scoring (``leadscore rescore``), each with its own models, score-log journal and webhook dispatcher.

The consumer reads a stream through a consumer group. Each entry holds ``motion`` and ``event`` (one canonical
event row as JSON). An entry is acknowledged (XACK) only after its events are recorded and applied and the
re-scores they caused are journaled, so a consumer that dies leaves its entries pending; the next consumer claims
entries idle longer than ``claim_idle_ms`` (XAUTOCLAIM) and processes them (an event applied twice counts once).
An entry that can never be processed (bad JSON, an event that breaks the events table's rules) is moved to
``<stream>:dead`` with the reason and acknowledged, so it cannot block the stream.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from leadscore.errors import UserError
from leadscore.settings import Settings
from leadscore.store import Store, StoreUnavailable
from serving import heap
from serving.events import EventIngest
from serving.score_log import open_score_log
from serving.scorer import Scorer
from serving.webhooks import Dispatcher

log = logging.getLogger("leadscore.stream")


@contextmanager
def pipeline(settings: Settings) -> Iterator[EventIngest]:
    """The event pipeline with its champions loaded, a journal and a dispatcher; flushed and stopped on exit."""
    settings.ensure_home()
    scorer = Scorer(settings)
    scorer.reload()
    if not scorer.ready():
        raise UserError(f"no champion is loaded ({scorer.load_errors or 'train one first'})")
    store = Store(settings.store_url)
    journal = open_score_log(Store(settings.store_url), settings).start()
    dispatcher = Dispatcher(store, settings.webhook_secret, settings.webhook_max_attempts,
                            settings.webhook_timeout, poll_seconds=0.2).start()  # fmt: skip
    heap.settle()
    try:
        yield EventIngest(scorer, store, journal, settings.webhook_url, dispatcher)
    finally:
        dispatcher.stop()
        journal.close()


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``12h``, ``7d`` (or a number of seconds) in seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise UserError(f"--older-than: {text!r} is not a duration (e.g. 90s, 30m, 12h, 7d)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}[m.group(2)]


def rescore_older(
    ingest: EventIngest, motion: str, older_than: float, now: float | None = None
) -> dict[str, int]:
    """Re-score every entity whose last score is older than ``older_than`` seconds (source ``decay``): scores
    that decay without new activity fall, and the drop triggers fire."""
    now = time.time() if now is None else now
    rows = ingest.store.query(
        "SELECT entity_id, account_id FROM last_scores WHERE motion = ? AND scored_at < ?",
        (motion, now - older_than),
    )
    contexts = sorted({r["account_id"] or r["entity_id"] for r in rows})
    rescored, notes = 0, 0
    for s in range(0, len(contexts), 200):
        r, n = ingest.rescore(motion, contexts[s : s + 200], "decay")
        rescored += r
        notes += n
    return {"stale": len(rows), "rescored": rescored, "notifications": notes}


@dataclass
class Consumed:
    entries: int = 0
    events: int = 0
    new: int = 0
    duplicates: int = 0
    dead: int = 0
    claimed: int = 0
    rescored: int = 0
    notifications: int = 0
    motions: dict[str, int] = field(default_factory=dict)


class StreamConsumer:
    def __init__(self, ingest: EventIngest, url: str, stream: str, group: str = "leadscore",
                 consumer: str = "consumer-1", batch: int = 500, claim_idle_ms: int = 30_000):  # fmt: skip
        import redis

        self.ingest, self.stream, self.group, self.consumer = ingest, stream, group, consumer
        self.batch, self.claim_idle_ms = batch, claim_idle_ms
        self.r = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2)
        self.totals = Consumed()
        try:
            self.r.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _claim(self) -> list[tuple[bytes, dict]]:
        """Entries another consumer read and never acknowledged (it died), idle long enough to take over."""
        out: list[tuple[bytes, dict]] = []
        start = "0-0"
        while True:
            reply = self.r.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, start, count=self.batch
            )
            start, entries = reply[0], reply[1]
            out += [(i, f) for i, f in entries if f is not None]
            if start in (b"0-0", "0-0") or len(out) >= self.batch:
                return out

    def _read(self, block_ms: int) -> list[tuple[bytes, dict]]:
        mine: Any = self.r.xreadgroup(
            self.group, self.consumer, {self.stream: "0"}, count=self.batch
        )  # ours, unacked
        entries = mine[0][1] if mine else []
        if entries:
            return entries
        new: Any = self.r.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.batch, block=block_ms
        )
        return new[0][1] if new else []

    def poll(self, block_ms: int = 1000) -> int:
        """One round: claimed entries first, then this consumer's own unacknowledged ones, then new ones.
        Returns how many entries were processed."""
        claimed = self._claim()
        self.totals.claimed += len(claimed)
        entries = claimed or self._read(block_ms)
        if entries:
            self._process(entries)
        return len(entries)

    def _process(self, entries: list[tuple[bytes, dict]]) -> None:
        by_motion: dict[str, list[tuple[bytes, dict]]] = defaultdict(list)
        dead: list[tuple[bytes, str]] = []
        for entry_id, fields in entries:
            try:
                motion = _text(fields[b"motion"])
                event = orjson.loads(fields[b"event"])
                if not isinstance(event, dict):
                    raise ValueError("event is not a JSON object")
                by_motion[motion].append((entry_id, event))
            except (KeyError, ValueError) as exc:
                dead.append((entry_id, f"unreadable entry: {exc}"))
        for motion, items in by_motion.items():
            try:
                self._ingest(motion, [e for _, e in items])
            except UserError:  # one bad event: the rest go on, the bad ones are dead-lettered
                for entry_id, e in items:
                    try:
                        self._ingest(motion, [e])
                    except UserError as exc:
                        dead.append((entry_id, str(exc)))
        for entry_id, why in dead:
            self.r.xadd(f"{self.stream}:dead", {"entry": entry_id, "error": why[:2000],
                                                "fields": orjson.dumps({_text(k): _text(v) for k, v in dict(entries)[entry_id].items()})})  # fmt: skip
        self.totals.dead += len(dead)
        self.r.xack(
            self.stream, self.group, *[i for i, _ in entries]
        )  # applied and journaled, or dead-lettered
        self.totals.entries += len(entries)

    def _ingest(self, motion: str, events: list[dict[str, Any]]) -> None:
        r = self.ingest.ingest(motion, events, source="event")
        t = self.totals
        t.events += r["received"]
        t.new += r["new"]
        t.duplicates += r["duplicates"]
        t.rescored += r["rescored"]
        t.notifications += r["notifications"]
        t.motions[motion] = t.motions.get(motion, 0) + r["received"]

    def run(self, until_empty: bool = False, max_seconds: float | None = None) -> Consumed:
        """Consume until stopped (or, ``until_empty``, until nothing is pending or new)."""
        deadline = time.time() + max_seconds if max_seconds else None
        while deadline is None or time.time() < deadline:
            try:
                n = self.poll(block_ms=200 if until_empty else 1000)
                self.ingest.prune_due()
            except StoreUnavailable as exc:  # nothing acknowledged: the entries are read again
                log.warning("store unavailable, retrying: %s", exc)
                time.sleep(1.0)
                continue
            if until_empty and n == 0 and not self._waiting():
                break
        return self.totals

    def _waiting(self) -> int:
        info = self.r.xpending(self.stream, self.group)
        return int(info["pending"])


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
