"""API keys on every endpoint, as a public BentoML ASGI middleware (``add_asgi_middleware``).

``Authorization: Bearer KEY``: 401 without a key or with an unknown or revoked one, 403 when the key lacks the
endpoint's scope, 429 (with Retry-After) past the key's own rate limit. Health, metrics and the API docs stay
open. With no key ever created the service is open (the embedded default on 127.0.0.1; ``leadscore serve``
refuses any other address without a key unless told ``--insecure``). Keys are re-read from the store every few
seconds, so a revoked key stops working without a restart; requests are counted per key name.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import bentoml

from leadscore import keys as api_keys
from leadscore.settings import Settings
from leadscore.store import Store
from serving.errors import body as error_body

log = logging.getLogger("leadscore.auth")
OPEN = ("/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/")
OPEN_PREFIXES = ("/static_content/",)
SCOPED = {
    "/score": "score",
    "/score_batch": "score",
    "/score_columns": "score",
    "/outcomes": "outcomes",
    "/events": "events",
}
REQUESTS = bentoml.metrics.Counter(
    name="leadscore_requests_by_key_total",
    documentation="authenticated requests by API key name and scope",
    labelnames=["key", "scope"],
)
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@functools.cache
def _counter(key: str, scope: str) -> Any:
    """A key's request counter (a label lookup costs more than the count itself)."""
    return REQUESTS.labels(key=key, scope=scope)


def required_scope(path: str) -> str | None:
    """The scope a path needs (``any``: any valid key), or None for the open paths."""
    if path in OPEN or path.startswith(OPEN_PREFIXES):
        return None
    if path.startswith("/admin/"):
        return "admin"
    return SCOPED.get(path.rstrip("/") or "/", "any")


def bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for k, v in headers:
        if k == b"authorization":
            kind, _, token = v.decode("latin-1").partition(" ")
            return token.strip() or None if kind.lower() == "bearer" else None
    return None


class _Bucket:
    """A token bucket: ``rate`` requests a minute, bursts up to ``rate``."""

    def __init__(self, rate: int):
        self.rate, self.tokens, self.at = rate, float(rate), time.monotonic()

    def take(self) -> float:
        """0 when a request may go now, else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate / 60)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) * 60 / self.rate


class KeyAuth:
    def __init__(self, app: Any, refresh_seconds: float = 5.0):
        self.app, self.refresh = app, refresh_seconds
        settings = Settings.load()
        self.store = Store(settings.store_url)
        self.copy = (
            settings.home / "api-keys.json"
        )  # the hashes last read, for a start while the store is down
        self._keys: list[api_keys.Key] = []
        self._loaded = float("-inf")
        self._ever_read = False  # until the keys were read once, nothing scoped is let through
        self._buckets: dict[str, _Bucket] = {}
        self._said_open = False

    def keys(self) -> list[api_keys.Key]:
        if time.monotonic() - self._loaded >= self.refresh:
            try:
                self._keys = api_keys.load(self.store)
                self._ever_read = True
                api_keys.save_copy(self._keys, self.copy)
            except Exception as exc:  # the store is down: the keys read last stay in force
                if not self._ever_read and self.copy.exists():
                    self._keys, self._ever_read = api_keys.read_copy(self.copy), True
                log.warning("could not read API keys (%s); keeping the %d known", exc, len(self._keys))
            self._loaded = time.monotonic()
            if self._ever_read and not self._keys and not self._said_open:
                log.warning("no API keys exist: every endpoint is open (create one: leadscore keys create)")
                self._said_open = True
        return self._keys

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        need = required_scope(scope["path"]) if scope["type"] == "http" else None
        if need is None:
            return await self.app(scope, receive, send)
        known = self.keys()
        if not self._ever_read:  # fail closed: an unreadable store must not open the service
            return await _deny(send, 503, "API keys cannot be checked yet (the store is not reachable)",
                               retry_after=5)  # fmt: skip
        if not known:
            return await self.app(scope, receive, send)
        token = bearer(scope["headers"])
        if token is None:
            return await _deny(send, 401, "missing API key: send the header Authorization: Bearer KEY")
        key = api_keys.find(known, token)
        if key is None:
            return await _deny(send, 401, "unknown or revoked API key")
        if need != "any" and need not in key.scopes:
            return await _deny(
                send, 403, f"the key {key.name!r} lacks the scope {need!r} that {scope['path']} needs"
            )
        if key.rate_per_minute:
            wait = self._buckets.setdefault(key.name, _Bucket(key.rate_per_minute)).take()
            if wait:
                return await _deny(send, 429, f"the key {key.name!r} is over its {key.rate_per_minute} requests a "
                                   "minute", retry_after=wait)  # fmt: skip
        _counter(key.name, need).inc()
        await self.app(scope, receive, send)


async def _deny(send: Send, status: int, message: str, retry_after: float | None = None) -> None:
    body = error_body(message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="leadscore"'))
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after + 0.5))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
