"""The bodies the service answers with: a scoring answer serialised once, a JSON response (which may give its
connection back), and a 503 that says when to come back."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from serving.errors import body as error_body


def json_body(r: dict[str, Any]) -> bytes:
    """One response body (the ScoreResponse contract, checked by the service tests), serialised on the scoring
    thread: the scorer builds these dicts itself, so re-validating them per lead would only cost time."""
    return orjson.dumps(
        {k: v for k, v in r.items() if not k.startswith("_")}, option=orjson.OPT_SERIALIZE_NUMPY
    )


def respond(body: bytes, hand_back: bool = False) -> Response:
    """``hand_back``: answer with ``Connection: close``. The workers share one listening socket and a worker keeps
    the keep-alive connections it accepted, so callers that connect at once can all land on one worker while the
    other idles (bentoml/BentoML#5426); a worker with bodies queued (events, bulk scoring) gives the connection
    back, and the caller's next request is accepted by whichever worker is free first. Single /score calls keep
    theirs: a new connection would cost them more than the balance gains."""
    return Response(
        body, media_type="application/json", headers={"Connection": "close"} if hand_back else None
    )


def unavailable(message: str, retry_after: int) -> Response:
    """A 503 that says when to come back (the journal is full, or too many requests wait)."""
    return Response(
        error_body(message),
        status_code=503,
        media_type="application/json",
        headers={"Retry-After": str(retry_after)},
    )
