"""Request limits before any parsing, as a public BentoML ASGI middleware: a body larger than the limit is a 413
(declared or streamed), and a POST whose content type the endpoints do not read is a 415 — never a 5xx from a
parser that was not meant for it (a multipart body without a boundary, say). Error bodies written by the layers
inside (BentoML's own endpoints) leave in the service's one error shape (``serving.errors``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from leadscore.settings import Settings
from serving.errors import body as error_body
from serving.errors import conform

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
READABLE = (b"application/json", b"text/plain")  # both read as JSON by the typed endpoints


class RequestLimits:
    def __init__(self, app: Any):
        self.app = app
        self.max_bytes = int(Settings.load().max_body_mb * 2**20)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, _conforming(send))
        headers = dict(scope["headers"])
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if kind and kind not in READABLE:
            return await _answer(send, 415, f"content type {kind.decode('latin-1')!r} is not accepted: send "
                                 "application/json")  # fmt: skip
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _answer(send, 413, f"the body is larger than {self.max_bytes:,} bytes")
        chunks, seen = [], 0
        while True:  # the whole body first (a streamed body has no declared length), then the endpoint
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                return await _answer(send, 413, f"the body is larger than {self.max_bytes:,} bytes")
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for a disconnect, as the server would
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, _conforming(send))


def _conforming(send: Send) -> Send:
    """``send`` with every error body another layer writes (BentoML's own endpoints) put in the one error shape."""
    state: dict[str, Any] = {}

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            state["start"], state["chunks"] = message, []
            return
        if "start" not in state:
            return await send(message)
        state["chunks"].append(message.get("body", b""))
        if message.get("more_body"):
            return
        out = conform(b"".join(state["chunks"]))
        headers = [
            (k, v)
            for k, v in state["start"]["headers"]
            if k.lower() not in (b"content-length", b"content-type")
        ]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
        await send(state["start"] | {"headers": headers})
        await send({"type": "http.response.body", "body": out})
        state.clear()

    return wrapped


async def _answer(send: Send, status: int, message: str) -> None:
    body = error_body(message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
