"""The /score hot path as an ASGI middleware, without a server: what it answers and what it passes on."""

from __future__ import annotations

import asyncio
import json

from pydantic import BaseModel, Field

from leadscore.errors import UserError
from serving.fastpath import FastPath


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


def call(body: bytes, *, path="/score", method="POST", ctype=b"application/json", handler=_ok, chunks=1,
         counted: list[int] | None = None):
    passed = []

    async def app(scope, receive, send):
        passed.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})

    mw = FastPath(app, path="/score", body=Body, field="request", handler=lambda: handler,
                  count=counted.append if counted is not None else None)
    size = max(1, len(body) // chunks + 1)
    parts = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "method": method, "headers": [(b"content-type", ctype)] if ctype else []}
    asyncio.run(mw(scope, receive, send))
    status = sent[0]["status"]
    headers = dict(sent[0]["headers"])
    out = sent[1]["body"]
    if status != 299:
        assert headers[b"content-type"] == b"application/json"
        assert int(headers[b"content-length"]) == len(out)
    return status, out, passed


def test_answers_a_valid_body_from_the_handler_even_in_chunks():
    assert call(b'{"request": {"n": 4}}')[:2] == (200, b'{"double": 8}')
    assert call(b'{"request": {"n": 21}}', chunks=5)[:2] == (200, b'{"double": 42}')
    assert call(b'{"request": {"n": 1}}', ctype=None)[:2] == (200, b'{"double": 2}')


def test_bad_input_is_a_400_naming_the_field():
    status, out, _ = call(b'{"request": {"n": -1}}')
    body = json.loads(out)
    assert status == 400 and body["detail"][0]["loc"] == ["request", "n"] and "validation error" in body["error"]
    status, out, _ = call(b'{"request": ')
    assert status == 400 and json.loads(out)["detail"][0]["type"] == "json_invalid"
    status, out, _ = call(b'{"request": {"n": 13}}')
    assert (status, json.loads(out)) == (400, {"error": "n: unlucky"})


def test_an_unexpected_error_is_a_500_without_internals():
    status, out, _ = call(b'{"request": {"n": 99}}')
    assert status == 500 and b"boom" not in out


def test_everything_else_passes_through_to_bentoml():
    for kwargs in ({"path": "/score_batch"}, {"method": "GET"}, {"ctype": b"multipart/form-data; boundary=x"},
                   {"handler": None}):
        status, out, passed = call(b'{"request": {"n": 4}}', **kwargs)
        assert (status, out) == (299, b"inner") and passed, kwargs


def test_every_answer_is_counted_by_status_and_pass_throughs_are_not():
    counted: list[int] = []
    for body in (b'{"request": {"n": 4}}', b'{"request": {"n": -1}}', b'{"request": {"n": 13}}',
                 b'{"request": {"n": 99}}'):
        call(body, counted=counted)
    call(b'{"request": {"n": 4}}', path="/score_batch", counted=counted)
    assert counted == [200, 400, 400, 500]


def test_the_hot_path_is_first_in_bentomls_middleware_stack():
    """Before BentoML's metrics, tracing and timeout middlewares (it counts its own responses)."""
    from _bentoml_impl.loader import load

    service = load("serving.service:LeadScore", standalone_load=True)
    stack = [m.cls for m in service.to_asgi(is_main=True).user_middleware]   # the app a worker serves
    assert stack[0] is FastPath and stack.count(FastPath) == 1
    assert [c.__name__ for c in stack[1:3]] == ["RunnerTrafficMetricsMiddleware", "OpenTelemetryMiddleware"]
