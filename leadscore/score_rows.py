"""The score log read back: one row per score, whether it was shipped as a score_log row (``/score``) or inside a
columnar score batch (``/score_columns``, ``/score_batch``, re-scores, ``leadscore score``)."""

from __future__ import annotations

from typing import Any

import orjson

from leadscore.store import SCORE_BATCH_FIELDS, SCORE_LOG_COLUMNS, Store


def read(store: Store, motion: str) -> list[dict[str, Any]]:
    """A motion's score log, one dict per score (``SCORE_LOG_COLUMNS``, ``features`` decoded to a dict), the
    rows of score_log and of score batches alike, in the order they were scored; a request id once (its
    first score)."""
    rows = store.query(
        f"SELECT {', '.join(SCORE_LOG_COLUMNS)} FROM score_log WHERE motion = ? ORDER BY id", (motion,)
    )
    for r in rows:
        r["features"] = orjson.loads(r["features"])
    for b in store.query(
        f"SELECT {', '.join(SCORE_BATCH_FIELDS)}, columns FROM score_batches WHERE motion = ?",
        (motion,),
    ):
        rows.extend(expand_batch(b, orjson.loads(b["columns"])))
    rows.sort(key=lambda r: r["at"])  # stable: rows scored in the same millisecond keep their order
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        first.setdefault(r["request_id"], r)
    return list(first.values())


def expand_batch(fields: dict[str, Any], columns: dict[str, Any]) -> list[dict[str, Any]]:
    """A score batch's scores as score-log rows (``SCORE_LOG_COLUMNS``, ``features`` a dict)."""
    n = fields["n"]
    as_of = columns["as_of"] if isinstance(columns["as_of"], list) else [columns["as_of"]] * n
    names, values = list(columns["features"]), list(columns["features"].values())
    features = (
        [dict(zip(names, v, strict=True)) for v in zip(*values, strict=True)]
        if names
        else [{} for _ in range(n)]
    )
    return [
        {"request_id": rid, "at": fields["at"], "as_of": t, "motion": fields["motion"], "entity_id": e,
         "model": fields["model"], "version": fields["version"], "score": s, "tier": tier, "route": route,
         "source": fields["source"], "features": f}
        for rid, t, e, s, tier, route, f in zip(
            columns["request_id"], as_of, columns["entity_id"], columns["score"], columns["tier"],
            columns["route"], features, strict=True,
        )
    ]  # fmt: skip
