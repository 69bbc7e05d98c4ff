"""One error shape for every 4xx and 5xx the service sends, the one its OpenAPI document publishes for errors
(BentoML's ``InvalidArgument``): ``{"error": "what went wrong", "detail": "which fields, and why"}``, both
strings; ``detail`` names each bad field by its location (``request.lead.created_at: Field required``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson


def describe(errors: Sequence[Mapping[str, Any]]) -> str:
    """pydantic's errors as one line: ``loc.of.field: message; …``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())) or 'body'}: {e.get('msg', '')}" for e in errors
    )


def body(error: str, detail: str | None = None) -> bytes:
    return orjson.dumps({"error": error} | ({"detail": detail} if detail else {}))


def conform(raw: bytes) -> bytes:
    """An error body another layer wrote (BentoML's own 400 holds ``detail`` as a list) in the one shape."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return body(raw.decode("utf-8", "replace")[:500] or "error")
    if isinstance(parsed, list):  # BentoML answers an endpoint's error raised in a task group as a list
        errors = [e["error"] for e in parsed if isinstance(e, dict) and isinstance(e.get("error"), str)]
        if errors:
            return body("; ".join(dict.fromkeys(errors)))
    if not isinstance(parsed, dict) or not isinstance(parsed.get("error"), str):
        return body(str(parsed)[:500])
    detail = parsed.get("detail")
    if isinstance(detail, list):
        return body(parsed["error"], describe([d for d in detail if isinstance(d, dict)]))
    if detail is not None and not isinstance(detail, str):
        return body(parsed["error"], str(detail))
    return raw
