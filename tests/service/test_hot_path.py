"""The /score hot path as an ASGI middleware, without a server: what it answers and what it passes on."""

from __future__ import annotations

import asyncio
import json

from pydantic import BaseModel, Field

from leadscore.errors import UserError
from serving.hot_path import HotPath


class Item(BaseModel):
    n: int = Field(ge=0)


class Body(BaseModel):
    request: Item


async def _ok(item: Item) -> bytes:
    if item.n == 13:
        raise UserError("n: unlucky")
    if item.n == 99:
        raise RuntimeError("boom")
    return json.dumps({"double": 2 * item.n}).encode()


_last_headers: dict[bytes, bytes] = {}


def call(
    body: bytes,
    *,
    path="/score",
    method="POST",
    ctype=b"application/json",
    handler=_ok,
    chunks=1,
    hand_back=None,
):
    passed = []

    async def app(scope, receive, send):
        passed.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})

    mw = HotPath(
        app, path="/score", body=lambda: Body, field="request", handler=lambda: handler, hand_back=hand_back
    )
    size = max(1, len(body) // chunks + 1)
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)
    ]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "path": path,
        "method": method,
        "headers": [(b"content-type", ctype)] if ctype else [],
    }
    asyncio.run(mw(scope, receive, send))
    status = sent[0]["status"]
    headers = dict(sent[0]["headers"])
    _last_headers.clear()
    _last_headers.update(headers)
    out = sent[1]["body"]
    if status != 299:
        assert headers[b"content-type"] == b"application/json"
        assert int(headers[b"content-length"]) == len(out)
    return status, out, passed


def test_answers_a_valid_body_from_the_handler_even_in_chunks():
    assert call(b'{"request": {"n": 4}}')[:2] == (200, b'{"double": 8}')
    assert call(b'{"request": {"n": 21}}', chunks=5)[:2] == (200, b'{"double": 42}')
    assert call(b'{"request": {"n": 1}}', ctype=None)[:2] == (200, b'{"double": 2}')


def test_the_connection_is_given_back_only_when_asked_and_only_after_an_answer():
    assert call(b'{"request": {"n": 4}}', hand_back=lambda: True)[0] == 200
    assert _last_headers[b"connection"] == b"close"
    assert call(b'{"request": {"n": 4}}', hand_back=lambda: False)[0] == 200
    assert b"connection" not in _last_headers
    assert call(b'{"request": {"n": 4}}')[0] == 200 and b"connection" not in _last_headers
    assert call(b'{"request": {"n": 13}}', hand_back=lambda: True)[0] == 400  # an error answer keeps it
    assert b"connection" not in _last_headers


def test_a_body_over_the_limit_is_a_413_streamed_or_not(monkeypatch):
    monkeypatch.setenv("LEADSCORE_MAX_BODY_MB", "0.001")  # 1,048 bytes
    big = b'{"request": {"n": 4}}' + b" " * 2000
    for chunks in (1, 7):
        status, out, passed = call(big, chunks=chunks)
        assert status == 413 and "larger than" in json.loads(out)["error"] and not passed


def test_bad_input_is_a_400_naming_the_field():
    status, out, _ = call(b'{"request": {"n": -1}}')
    body = json.loads(out)
    assert status == 400 and body["detail"].startswith("request.n: ") and "validation error" in body["error"]
    status, out, _ = call(b'{"request": ')
    assert status == 400 and "Invalid JSON" in json.loads(out)["detail"]
    status, out, _ = call(b'{"request": {"n": 13}}')
    assert (status, json.loads(out)) == (400, {"error": "n: unlucky"})


def test_an_unexpected_error_is_a_500_without_internals():
    status, out, _ = call(b'{"request": {"n": 99}}')
    assert status == 500 and b"boom" not in out


def test_everything_else_passes_through_to_bentoml():
    for kwargs in (
        {"path": "/score_batch"},
        {"method": "GET"},
        {"ctype": b"multipart/form-data; boundary=x"},
        {"handler": None},
    ):
        status, out, passed = call(b'{"request": {"n": 4}}', **kwargs)
        assert (status, out) == (299, b"inner") and passed, kwargs


def test_overload_and_a_full_journal_are_a_503_that_says_when_to_come_back():
    from serving.micro_batcher import Overloaded
    from serving.score_log import JournalFull

    for exc, wait in ((Overloaded("busy"), b"1"), (JournalFull("store down"), b"5")):

        async def refuse(item, exc=exc):
            raise exc

        status, out, _ = call(b'{"request": {"n": 4}}', handler=refuse)
        assert status == 503 and json.loads(out)["error"] and _last_headers[b"retry-after"] == wait


def test_the_hot_path_sits_inside_bentomls_own_middlewares_after_the_key_check():
    """Added through the public add_asgi_middleware: BentoML's metrics, tracing, timeout and concurrency limit
    wrap it, and the key check runs before it (the request limits guard what it passes on)."""
    from serving.service import LeadScore

    stack = [m.cls.__name__ for m in LeadScore.to_asgi(is_main=True).user_middleware]
    assert stack.index("KeyAuth") < stack.index("HotPath") < stack.index("RequestLimits")
    assert stack.index("TimeoutMiddleware") < stack.index("HotPath")
    assert stack.index("MaxConcurrencyMiddleware") < stack.index("HotPath")
    assert stack.index("OpenTelemetryMiddleware") < stack.index("HotPath")
