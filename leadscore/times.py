"""Time, parsed one way everywhere: epoch seconds for points in time, naive UTC datetimes for columns.

Naive timestamps are UTC. Epoch seconds are bounded to the years 1 to 9999, which every datetime type here can
hold; a value outside is a ``UserError`` (a 4xx at the service), never an overflow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadscore.errors import UserError

ZONED = re.compile(r"(?:[Zz]|[+-]\d\d:?\d\d)\s*$")  # ISO-8601 text that ends with a zone
MIN_EPOCH, MAX_EPOCH = -62_135_596_800, 253_402_300_799  # 0001-01-01 and 9999-12-31T23:59:59 UTC


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def epoch_seconds(v: Any) -> int:
    """Epoch seconds, a datetime (``pd.Timestamp`` too) or an ISO-8601 string (UTC if no zone) → epoch seconds."""
    kind = type(v)
    if (kind is int or kind is float) and MIN_EPOCH <= v <= MAX_EPOCH:
        return int(v)  # the usual case (an events body holds thousands), answered before the general checks
    if _is_number(v):
        if v != v or v in (float("inf"), float("-inf")):
            raise UserError("timestamp must be finite")
        if not MIN_EPOCH <= v <= MAX_EPOCH:
            raise UserError(f"timestamp {v!r} is out of range (epoch seconds of the years 1 to 9999)")
        return int(v)
    if isinstance(v, datetime):
        d = v
    elif isinstance(v, str):
        try:
            d = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UserError(
                f"unparseable timestamp {v!r} (use ISO-8601, e.g. 2026-01-31T09:30:00Z)"
            ) from None
    else:
        raise UserError(f"unparseable timestamp {v!r}")
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return int(d.timestamp())


def _number(text: str) -> Any:
    """Epoch seconds given as text ("1718000000") as the number; other text as it is."""
    try:
        return float(text)
    except ValueError:
        return text


def epoch_array(values: list[Any]) -> np.ndarray:
    """``epoch_seconds`` of a column of times, as int64: a column all of ISO-8601 text in one layout (zoned or
    not) is parsed at once by Arrow, anything else value by value. A bad value raises a ``UserError`` that
    starts with its position ("3: unparseable timestamp ...")."""
    try:  # a column all of text; anything else (numbers, None) is refused here and read value by value
        text = pa.array(values, type=pa.string()) if values else None
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = None
    if text is not None and text.null_count == 0:
        units = [pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")]
        if ZONED.search(values[0]):  # the layout the first value has first: a failed cast costs ~40x a parse
            units.reverse()
        for unit in units:
            try:
                ns = pc.cast(text, unit).cast(pa.int64()).to_numpy()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            q = ns // 10**9
            return q + ((ns < 0) & (ns % 10**9 != 0))  # toward zero, as int(datetime.timestamp())
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        try:
            out[i] = epoch_seconds(_number(v) if isinstance(v, str) else v)
        except UserError as exc:
            raise UserError(f"{i}: {exc}") from None
    return out


def utc_naive(s: pd.Series) -> pd.Series:
    """A column of timestamps (datetimes, or text in any common layout) as naive UTC datetimes; what cannot be
    read becomes NaT.

    Text is tried fastest first: ISO-8601 without a zone, then with one (Arrow's parsers, in one pass), then
    ISO-8601 with some values zoned (pandas), and only then any layout, value by value."""
    if s.dtype.kind == "M":
        return s.dt.tz_convert("UTC").dt.tz_localize(None) if s.dt.tz is not None else s
    for unit in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            parsed = pc.cast(pa.array(s, type=pa.string(), from_pandas=True), unit)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
            continue
        out = pd.Series(parsed.to_pandas(), index=s.index)
        return out.dt.tz_localize(None) if out.dt.tz is not None else out
    try:
        return pd.to_datetime(s, errors="raise", utc=True, format="ISO8601").dt.tz_localize(None)
    except (ValueError, TypeError, OverflowError):
        return pd.to_datetime(s, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)


def format_utc(t: int) -> str:
    """Epoch seconds as the store's text form (``YYYY-MM-DD HH:MM:SS``, UTC)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
