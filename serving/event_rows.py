"""Events bodies read as the canonical events table reads them (``POST /events``, the stream consumer): validated
rows with ``ts`` in epoch seconds, a broken rule named by the event's index, field and value; and a body cut into
parts that keep each entity's events together."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.online_events import entity_of
from leadscore import motions
from leadscore.errors import UserError
from leadscore.schema import TABLES, SchemaError, coerce, plain_rows
from leadscore.times import epoch_seconds, format_utc


def validate(motion: str, events: list[dict[str, Any]], stamps: list[int] | None = None) -> pd.DataFrame:
    """The events as the canonical events table reads them; a broken rule is a UserError naming it.
    ``stamps``: every event's ``ts`` already read as epoch seconds (then they are not read again)."""
    table = TABLES[motion]["events"]
    if stamps is None:
        frame = pd.DataFrame([e | {"ts": _iso(e.get("ts"))} for e in events])
    else:
        frame = pd.DataFrame(events)
        frame["ts"] = pd.to_datetime(np.asarray(stamps, dtype=np.int64), unit="s")
    for c in table.names:
        if c not in frame:
            frame[c] = None
    try:
        return coerce(table, frame[table.names])
    except SchemaError as exc:
        raise UserError(_one_line(exc)) from None


def canonical_rows(motion: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validated canonical rows (``ts`` in epoch seconds)."""
    if motion not in motions.NAMES:
        raise UserError(f"motion: unknown motion {motion!r}")
    stamps = _stamps(events)
    if stamps is not None and (plain := plain_rows(TABLES[motion]["events"], events, stamps)) is not None:
        return plain  # the usual body: nothing to cast, no rule broken (no frame needed to say so)
    frame = validate(motion, events, stamps)
    rows = records_of(frame.drop(columns="ts") if stamps is not None else frame)
    for r, t in zip(rows, stamps or [epoch_seconds(r["ts"]) for r in rows], strict=True):
        r["ts"] = t
    return rows


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as dicts of Python values, a missing value as None (``to_dict("records")`` with NaN as
    None, a column at a time rather than a value at a time)."""
    names = list(frame.columns)
    columns = [frame[c].to_numpy(dtype=object, na_value=None).tolist() for c in names]
    return [dict(zip(names, r, strict=True)) for r in zip(*columns, strict=True)]


def entity_parts(motion: str, events: list[dict[str, Any]], most: int) -> list[list[dict[str, Any]]]:
    """The events in parts of at most ``most`` events each (an entity's events stay together, in order: an entity
    with more is a part of its own)."""
    by: dict[str, list[dict]] = {}
    for e in events:
        by.setdefault(entity_of(motion, e), []).append(e)
    parts: list[list[dict[str, Any]]] = [[]]
    for group in by.values():
        if parts[-1] and len(parts[-1]) + len(group) > most:
            parts.append([])
        parts[-1] += group
    return parts if parts[0] else []


def _stamps(events: list[dict[str, Any]]) -> list[int] | None:
    """Every event's ``ts`` as epoch seconds, or None when one is missing or unreadable (the table's rules then
    name it)."""
    try:
        return [epoch_seconds(e["ts"]) for e in events]
    except (UserError, KeyError, TypeError):
        return None


def _iso(t: Any) -> Any:
    """A validated time (epoch seconds or a datetime) as the ISO-8601 text the canonical tables read."""
    return t if t is None or isinstance(t, str) else format_utc(epoch_seconds(t))


def _one_line(exc: SchemaError) -> str:
    """A broken rule as the API's one-line error: the first bad event by its index, the field and its value."""
    if not len(exc.rows):
        return f"events: {exc.column}: {exc.rule}"
    i, value = exc.rows.index[0], exc.rows[exc.column].iloc[0] if exc.column in exc.rows else None
    shown = "missing" if value is None or value != value else repr(value)
    more = f"; {exc.count - 1} more event(s) break this rule" if exc.count > 1 else ""
    return f"events.{i}.{exc.column}: {exc.rule} (got {shown}){more}"
