"""Trigger notifications: a durable outbox in the store, and a dispatcher that delivers it as signed webhooks.

A notification is written to the outbox in the same transaction as the change that caused it, before any answer
(``dedupe_key`` is unique: one notification per (motion, entity, trigger, window), however often the change is
seen). The dispatcher claims due rows with a lease (a compare-and-set on the row, so two processes never send
the same row at once, and a row whose sender died is sent again once its lease runs out: at least once),
POSTs each, and on failure retries with backoff (1 s, doubling, at most 5 minutes) until
``webhook_max_attempts``, then dead-letters it (``state = 'dead'``, the last error kept).

Each request is signed: ``X-Leadscore-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` with
LEADSCORE_WEBHOOK_SECRET; ``X-Leadscore-Delivery`` carries the dedupe key, so a receiver can drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

import orjson

from leadscore.store import Store, StoreUnavailable, Tx

log = logging.getLogger("leadscore.webhooks")
LEASE_SECONDS = 30.0
MAX_BACKOFF = 300.0


def signature(secret: str, t: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, header: str, body: bytes, tolerance: float = 300.0, now: float | None = None) -> bool:
    """What a receiver checks: the signature matches and its time is within ``tolerance`` seconds."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    fresh = abs((time.time() if now is None else now) - t) <= tolerance
    return fresh and hmac.compare_digest(signature(secret, t, body), f"t={t},v1={parts.get('v1', '')}")


def enqueue(
    tx: Tx, notifications: Iterable[tuple[str, str, dict[str, Any]]], insert_ignore: tuple[str, str]
) -> int:
    """Outbox rows (dedupe key, url, body) inside the caller's transaction; a key already there is skipped.
    Returns how many were new."""
    now = time.time()
    n = 0
    head, tail = insert_ignore
    for key, url, body in notifications:
        data = orjson.dumps(body | {"id": key}).decode()
        n += tx.execute(
            f"{head} outbox (dedupe_key, url, body, created_at, attempts, next_at, state) "
            f"VALUES (?, ?, ?, ?, 0, ?, 'pending'){tail}",
            (key, url, data, now, now),
        )
    return n


class Dispatcher:
    """Delivers due outbox rows on a thread of its own; ``wake()`` after adding rows sends them at once."""

    def __init__(self, store: Store, secret: str | None, max_attempts: int = 8, timeout: float = 5.0,
                 poll_seconds: float = 0.5):  # fmt: skip
        self.store, self.secret, self.max_attempts, self.timeout = store, secret, max_attempts, timeout
        self.poll_seconds = poll_seconds
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = self.failed = 0

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        down = 0.0  # seconds to wait before the next try while the store is unavailable (doubling, up to 5)
        while not self._stop.is_set():
            try:
                busy = self.run_once()
                down = 0.0
            except StoreUnavailable as exc:
                if not down:  # once per outage, not once per try
                    log.warning("outbox unavailable: %s", exc)
                down = min(max(2 * down, self.poll_seconds), 5.0)
                self._stop.wait(down)
                continue
            except Exception:  # a bug must not stop delivery for good
                log.exception("webhook dispatcher")
                busy = 0
            if not busy:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def _claim(self, limit: int) -> list[dict[str, Any]]:
        now = time.time()
        due = self.store.query(
            "SELECT id, url, body, attempts, state, next_at FROM outbox WHERE state IN ('pending', 'sending') "
            "AND next_at <= ? ORDER BY next_at LIMIT ?",
            (now, limit),
        )
        mine = []
        for r in due:
            if self.store.execute(
                "UPDATE outbox SET state = 'sending', next_at = ? WHERE id = ? AND state = ? AND next_at = ?",
                (now + LEASE_SECONDS, r["id"], r["state"], r["next_at"]),
            ):
                mine.append(r)
        return mine

    def run_once(self, limit: int = 50) -> int:
        """Send what is due now; returns how many rows were tried."""
        rows = self._claim(limit)
        for r in rows:
            error = self._post(r["url"], r["body"].encode())
            if error is None:
                self.store.execute(
                    "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = ? WHERE id = ?",
                    (time.time(), r["attempts"] + 1, r["id"]),
                )
                self.sent += 1
                continue
            self.failed += 1
            attempts = r["attempts"] + 1
            dead = attempts >= self.max_attempts
            self.store.execute(
                "UPDATE outbox SET state = ?, attempts = ?, next_at = ?, last_error = ? WHERE id = ?",
                ("dead" if dead else "pending", attempts,
                 time.time() + min(MAX_BACKOFF, 2.0 ** (attempts - 1)), error[:500], r["id"]),
            )  # fmt: skip
            log.log(logging.ERROR if dead else logging.INFO, "webhook %s to %s failed (try %d%s): %s",
                    r["id"], r["url"], attempts, ", dead-lettered" if dead else "", error)  # fmt: skip
        return len(rows)

    def _post(self, url: str, body: bytes) -> str | None:
        """None when the receiver took it (2xx); else why not."""
        headers = {"content-type": "application/json", "user-agent": "leadscore-webhooks"}
        if self.secret:
            headers["X-Leadscore-Signature"] = signature(self.secret, int(time.time()), body)
        headers["X-Leadscore-Delivery"] = orjson.loads(body).get("id", "")
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
