"""Score-log rows from the scorer's results: one tuple per score, in the score log's column order, or score
batches, one tuple per batch of a columnar result (what the journal writes and the shipper copies into the
store)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from leadscore.store import new_request_id
from leadscore.times import format_utc

# Scores per score batch: a chunk of ``leadscore score`` is several journal lines of a few MB.
BATCH_ROWS = 10_000


def rows(results: list[dict[str, Any]], source: str) -> list[tuple]:
    """Score-log rows for a batch of scorer results: one clock reading, each distinct as-of formatted once."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    as_of = {t: format_utc(t) for t in {r["_as_of"] for r in results}}
    return [
        (r["request_id"], at, as_of[r["_as_of"]], r["motion"], r["lead_id"], r["model"], r["version"], r["score"],
         r["tier"], r["route"], source, orjson.dumps(r["_features"], option=orjson.OPT_SERIALIZE_NUMPY).decode())
        for r in results
    ]  # fmt: skip


def result_batches(results: list[dict[str, Any]], source: str) -> list[tuple]:
    """Score batches for scorer results (``/score_batch``, re-scores): one or more per motion and model version
    among them, in the results' order within each."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["motion"], r["model"], r["version"]), []).append(r)
    out: list[tuple] = []
    for (motion, model, version), rs in groups.items():
        as_of = {t: format_utc(t) for t in {r["_as_of"] for r in rs}}
        features = {k: [r["_features"].get(k) for r in rs] for k in rs[0]["_features"]}
        out += batches(motion, model, version, source, [r["request_id"] for r in rs], [as_of[r["_as_of"]] for r in rs],
                       [r["lead_id"] for r in rs], np.array([r["score"] for r in rs], dtype=np.float64),
                       [r["tier"] for r in rs], [r["route"] for r in rs], features)  # fmt: skip
    return out


def column_batches(result: dict[str, Any], source: str) -> list[tuple]:
    """Score batches for a columnar result (``Scorer.score_columns``): its scores in a few rows of the store."""
    return batches(result["motion"], result["model"], result["version"], source, result["request_id"],
                   result["as_of"], result["lead_id"], result["score"], result["tier"], result["route"],
                   result["_features"])  # fmt: skip


def batches(motion: str, model: str, version: str, source: str, request_id: list[str],
            as_of: str | list[str] | np.ndarray,
            entity_id: list[str] | np.ndarray, score: np.ndarray, tier: list[str] | np.ndarray,
            route: list[str] | np.ndarray, features: dict[str, Any]) -> list[tuple]:  # fmt: skip
    """Score batches (``SCORE_BATCH_FIELDS``, then the columns' JSON) of at most BATCH_ROWS
    scores each. ``as_of`` is one text for all, or one per score; NaN features are written as null."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    n, out = len(request_id), []
    for s in range(0, n, BATCH_ROWS):
        part = slice(s, s + BATCH_ROWS)
        times = as_of if isinstance(as_of, str) else _listed(as_of[part])
        columns = {
            "request_id": request_id[part], "as_of": times, "entity_id": _listed(entity_id[part]),
            "score": np.ascontiguousarray(score[part], dtype=np.float64), "tier": _listed(tier[part]),
            "route": _listed(route[part]), "features": {k: _listed(v[part]) for k, v in features.items()},
        }  # fmt: skip
        text = orjson.dumps(columns, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        first = times if isinstance(times, str) else min(times)
        out.append(
            (new_request_id(), at, first, motion, model, version, source, len(columns["request_id"]), text)
        )
    return out


def _listed(values: Any) -> Any:
    """A column as orjson writes it at once: a contiguous array of numbers, else a list."""
    if isinstance(values, np.ndarray):
        return np.ascontiguousarray(values) if values.dtype.kind in "fiu" else values.tolist()
    return values if isinstance(values, list) else list(values)
