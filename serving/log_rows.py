"""Score-log rows from the scorer's results: one tuple per score, in the score log's column order (what the
journal writes and the shipper copies into the store)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from features.online_frame import rows_of
from leadscore.times import format_utc


def rows(results: list[dict[str, Any]], source: str) -> list[tuple]:
    """Score-log rows for a batch of scorer results: one clock reading, each distinct as-of formatted once."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    as_of = {t: format_utc(t) for t in {r["_as_of"] for r in results}}
    return [
        (r["request_id"], at, as_of[r["_as_of"]], r["motion"], r["lead_id"], r["model"], r["version"], r["score"],
         r["tier"], r["route"], source, orjson.dumps(r["_features"], option=orjson.OPT_SERIALIZE_NUMPY).decode())
        for r in results
    ]  # fmt: skip


def column_rows(result: dict[str, Any], source: str) -> list[tuple]:
    """Score-log rows for a columnar result (``Scorer.score_columns``): the same rows ``rows`` gives, the
    features' JSON encoded a column at a time."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    as_of, motion, model, version = result["as_of"], result["motion"], result["model"], result["version"]
    return [
        (rid, at, as_of, motion, lead, model, version, score, tier, route, source, f)
        for rid, lead, score, tier, route, f in zip(
            result["request_id"], result["lead_id"], result["score"].tolist(), result["tier"],
            result["route"], feature_json(result["_features"]), strict=True,
        )
    ]  # fmt: skip


def feature_json(columns: dict[str, np.ndarray]) -> list[str]:
    """Each row's features as JSON text (NaN as null), encoded for all rows at once by polars; value by value
    (orjson) where a column's values are of mixed kinds."""
    import polars as pl

    try:
        frame = pl.DataFrame(
            [
                pl.Series(c, v, nan_to_null=True) if v.dtype.kind == "f" else pl.Series(c, v.tolist())
                for c, v in columns.items()
            ]  # fmt: skip
        )
        if frame.width:
            return frame.select(pl.struct(pl.all()).struct.json_encode()).to_series().to_list()
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        pass
    option = orjson.OPT_SERIALIZE_NUMPY
    return [orjson.dumps(f, option=option).decode() for f in rows_of(columns)]
