"""The hot path for ``POST /score``: an ASGI middleware inside the BentoML service that answers JSON scoring
calls straight from the service's micro-batcher.

BentoML's per-request machinery (its generic HTTP metrics, tracing and timeout middlewares, routing, IO
descriptors, signature binding, request context) costs more than scoring a lead does. ``first_in_stack`` puts
this middleware first, just inside Starlette's error handler, so a JSON scoring call skips all of it; the
service counts these responses itself (by status) besides its per-motion scoring metrics. The contract is the
typed BentoML endpoint's, which stays the documented (OpenAPI) definition: the same request model, the same
response body, the same 400 bodies for bad input. Anything it does not handle (another content type, the
service still starting) falls through to BentoML's full stack unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from leadscore.errors import UserError

log = logging.getLogger("leadscore.serving")
Handler = Callable[[Any], Awaitable[bytes]]
Count = Callable[[int], None]
JSON_HEADERS = [(b"content-type", b"application/json")]


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]


def answer(body: bytes, model: type[BaseModel]) -> tuple[BaseModel | None, int, bytes]:
    """Parse and validate a request body: (the validated body, 200, b"") or (None, 400, the error body),
    worded as BentoML words it (``{"error": ..., "detail": [...]}``, fields by location)."""
    try:
        return model.model_validate_json(body), 200, b""
    except ValidationError as exc:
        return None, 400, orjson.dumps({"error": f"{exc.error_count()} validation error for {exc.title}",
                                        "detail": exc.errors(include_context=False, include_input=False,
                                                             include_url=False)})


class FastPath:
    """``FastPath(app, path=..., body=InputModel, field="request", handler=lambda: coroutine_fn_or_None,
    count=callable_taking_the_status)``."""

    def __init__(self, app, *, path: str, body: type[BaseModel], field: str,
                 handler: Callable[[], Handler | None], count: Count | None = None):
        self.app, self.path, self.body, self.field, self.handler = app, path, body, field, handler
        self.count = count

    async def __call__(self, scope, receive, send) -> None:
        handle = self.handler() if scope["type"] == "http" and scope["path"] == self.path else None
        if handle is None or scope["method"] != "POST" or not _is_json(scope):
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        parsed, status, out = answer(b"".join(chunks), self.body)
        if parsed is not None:
            try:
                out = await handle(getattr(parsed, self.field))
            except UserError as exc:
                status, out = 400, orjson.dumps({"error": str(exc)})
            except Exception:
                log.exception("scoring failed")
                status, out = 500, b'{"error":"An unexpected error has occurred, please check the server log."}'
        if self.count is not None:
            self.count(status)  # before the answer leaves, so a caller who has it sees it counted
        await send({"type": "http.response.start", "status": status, "headers": _headers(out)})
        await send({"type": "http.response.body", "body": out})


def first_in_stack() -> bool:
    """Make BentoML build its app with ``FastPath`` as the first middleware (inside Starlette's error handler,
    before BentoML's metrics, tracing and timeout middlewares). BentoML has no public setting for the order, so
    this wraps its app factory's middleware list; if that internal moves, nothing breaks: the hot path stays
    where ``add_asgi_middleware`` put it (after BentoML's middlewares) and this returns False."""
    try:
        from _bentoml_impl.server.app import ServiceAppFactory
    except ImportError:
        return False
    listed = ServiceAppFactory.__dict__.get("middlewares")
    if not isinstance(listed, property) or getattr(listed.fget, "_fast_path_first", False):
        return isinstance(listed, property)

    def middlewares(self) -> list:
        stack = listed.fget(self)
        return [m for m in stack if m.cls is FastPath] + [m for m in stack if m.cls is not FastPath]

    middlewares._fast_path_first = True  # type: ignore[attr-defined]
    ServiceAppFactory.middlewares = property(middlewares)  # type: ignore[method-assign]
    return True


def _is_json(scope) -> bool:
    for k, v in scope["headers"]:
        if k == b"content-type":
            return v.split(b";")[0].strip() == b"application/json"
    return True  # BentoML reads a body without a content type as JSON too
