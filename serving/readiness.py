"""``/readyz`` with its reasons: a public BentoML ASGI middleware that keeps BentoML's own readiness answer (its
status code: 200 once the service says it is ready, 503 before) and replaces the bare body with what an operator
needs to see why — the models loaded, the store, the journal's unshipped rows against its cap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson


class ReadyDetail:
    """``ReadyDetail(app, detail=lambda: dict_or_None)``: ``detail`` is called per ``GET /readyz`` (None while the
    worker's service is still being constructed: BentoML's answer goes out unchanged)."""

    def __init__(self, app: Any, *, detail: Callable[[], dict[str, Any] | None]):
        self.app, self.detail = app, detail

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/readyz" or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        info = self.detail()
        if info is None:
            return await self.app(scope, receive, send)
        status: dict[str, int] = {}

        async def keep_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]

        await self.app(scope, receive, keep_status)
        code = status.get("code", 503)
        body = orjson.dumps({"ready": code == 200} | info)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
