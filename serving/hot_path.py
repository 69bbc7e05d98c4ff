"""The hot path for ``POST /score``: a public BentoML ASGI middleware (``add_asgi_middleware``) that answers JSON
scoring calls straight from the service's micro-batcher.

BentoML places user middlewares inside its own: its HTTP metrics, tracing, access log, timeout and concurrency
limit apply to these calls exactly as to its endpoint. What the hot path skips is the inner dispatch — routing,
IO descriptors, signature binding, request context — which costs more than scoring a lead does. It validates
with the endpoint's own input model (``LeadScore.apis["score"].input_spec``, the model BentoML derives from
the typed signature, which stays the documented contract) and answers with the same bodies, the same 400s for
bad input. Anything it does not handle (another content type, the service still starting) falls through to
BentoML's endpoint unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from leadscore.errors import UserError
from leadscore.settings import Settings
from serving.errors import body as error_body
from serving.errors import describe
from serving.micro_batcher import Overloaded
from serving.score_log import JournalFull

log = logging.getLogger("leadscore.serving")
Handler = Callable[[Any], Awaitable[bytes]]
JSON_HEADERS = [(b"content-type", b"application/json")]


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]


def answer(raw: bytes, model: type[BaseModel]) -> tuple[BaseModel | None, int, bytes]:
    """Parse and validate a request body: (the validated body, 200, b"") or (None, 400, the error body in the
    service's one error shape, each bad field named by its location)."""
    try:
        return model.model_validate_json(raw), 200, b""
    except ValidationError as exc:
        detail = describe(exc.errors(include_context=False, include_input=False, include_url=False))
        return None, 400, error_body(f"{exc.error_count()} validation error for {exc.title}", detail)


class HotPath:
    """``HotPath(app, path=..., body=lambda: InputModel, field="request", handler=lambda: coroutine_fn_or_None)``:
    ``body`` and ``handler`` are looked up when a request comes (the service exists by then); the handler gets
    the body's ``field``, or the whole validated body when ``field`` is None. ``hand_back()``, asked once the
    handler has answered: true closes the connection after the answer (other bodies wait in this worker)."""

    def __init__(
        self,
        app,
        *,
        path: str,
        body: Callable[[], type[BaseModel]],
        field: str | None,
        handler: Callable[[], Handler | None],
        hand_back: Callable[[], bool] | None = None,
    ):
        self.app, self.path, self.body, self.field, self.handler = app, path, body, field, handler
        self.hand_back = hand_back
        self.max_bytes = int(Settings.load().max_body_mb * 2**20)

    async def __call__(self, scope, receive, send) -> None:
        handle = self.handler() if scope["type"] == "http" and scope["path"] == self.path else None
        if handle is None or scope["method"] != "POST" or not _is_json(scope):
            return await self.app(scope, receive, send)
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:  # the same limit as ``serving.limits`` applies to everything else
                out = error_body(f"the body is larger than {self.max_bytes:,} bytes")
                await send({"type": "http.response.start", "status": 413, "headers": _headers(out)})
                await send({"type": "http.response.body", "body": out})
                return
            if not message.get("more_body"):
                break
        parsed, status, out = answer(b"".join(chunks), self.body())
        headers: list[tuple[bytes, bytes]] = []
        if parsed is not None:
            try:
                out = await handle(getattr(parsed, self.field) if self.field else parsed)
                if self.hand_back is not None and self.hand_back():
                    headers = [(b"connection", b"close")]  # (``serving.responses.respond``)
            except UserError as exc:
                status, out = 400, error_body(str(exc))
            except (Overloaded, JournalFull) as exc:
                status, out = 503, error_body(str(exc))
                headers = [(b"retry-after", b"1" if isinstance(exc, Overloaded) else b"5")]
            except Exception:
                log.exception("scoring failed")
                status, out = (
                    500,
                    b'{"error":"An unexpected error has occurred, please check the server log."}',
                )
        await send({"type": "http.response.start", "status": status, "headers": _headers(out) + headers})
        await send({"type": "http.response.body", "body": out})


def _is_json(scope) -> bool:
    for k, v in scope["headers"]:
        if k == b"content-type":
            return v.split(b";")[0].strip() == b"application/json"
    return True  # BentoML reads a body without a content type as JSON too
