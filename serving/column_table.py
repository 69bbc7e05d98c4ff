"""A columnar scoring body (``POST /score_columns``) read into a ``RequestTable``: every column checked (equal
lengths, child rows in range, event types of the motion) and its times read as epoch seconds."""

from __future__ import annotations

from typing import Any

from features.request_frame import RequestTable
from leadscore import motions
from leadscore.errors import UserError
from leadscore.times import epoch_array
from serving.schemas import ColumnsRequest

EVENT_TYPES = {name: frozenset(m.event_types) for name, m in motions.MOTIONS.items()}


def table_of(req: ColumnsRequest) -> RequestTable:
    """The columnar body checked (equal lengths, rows in range, event types of the motion) with its times as
    epoch seconds; absent B2C consent is no consent (as in ``Customer``). Errors name the column and row."""
    m = motions.get(req.motion)
    body = getattr(req, m.request_field)
    if body is None:
        raise UserError(f"{m.request_field}: required for motion {m.name}")
    entity = _present(body, m.request_field, None)
    n = len(entity[m.id_column])
    if not n:
        raise UserError(f"{m.request_field}.{m.id_column}: at least one row")
    account = _present(req.account, "account", n) if req.account is not None else None
    events = _present(req.events, "events", None) if req.events is not None else None
    orders = _present(req.orders, "orders", None) if req.orders is not None else None
    entity["created_at"] = _times(entity["created_at"], f"{m.request_field}.created_at")
    if m.family == "b2c":
        for k in ("consent_email", "consent_sms"):
            entity[k] = [bool(v) for v in entity.get(k) or [False] * n]
    types = EVENT_TYPES[m.name]
    for name, child in (("events", events), ("orders", orders)):
        if child is None:
            continue
        bad = next((k for k, r in enumerate(child["row"]) if r >= n), None)
        if bad is not None:
            raise UserError(f"{name}.row.{bad}: {child['row'][bad]} is not a row (the body has {n})")
        child["ts"] = _times(child["ts"], f"{name}.ts")
        if name == "events":
            bad = next((k for k, t in enumerate(child["type"]) if t not in types), None)
            if bad is not None:
                raise UserError(f"events.type.{bad}: {child['type'][bad]!r} is not a {m.name} event type")
    return RequestTable(req.motion, entity, account, events, orders)


def _present(model: Any, name: str, n: int | None) -> dict[str, list]:
    """A column table's given columns, all of one length (``n`` when given)."""
    columns = {k: v for k, v in model.__dict__.items() if v is not None}
    for k, v in columns.items():
        n = len(v) if n is None else n
        if len(v) != n:
            raise UserError(f"{name}.{k}: {len(v)} values for {n} rows")
    return columns


def _times(values: list, name: str) -> Any:
    try:
        return epoch_array(values)
    except UserError as exc:
        i, _, message = str(exc).partition(": ")
        raise UserError(f"{name}.{i}: {message}") from None
