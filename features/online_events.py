"""Events applied to a stored context as they happen, in the form materialization writes, so the online features
after them equal those of a materialization that includes them (``tests/code/test_online_events.py``).

Pure functions over a context's JSON form: a context (an account's for B2B and hybrid, a customer's for B2C) is
read, the events it does not hold yet (by ``event_id``) are appended in time order, events that have left the
longest feature window are dropped, and the caller writes it back. An event whose entity the context does not
know (no context; a lead the account's context does not list) cannot be attributed yet: it is returned as
pending, to be applied once the entity appears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from features.point_in_time import MAX_WINDOW
from leadscore import motions


def entity_of(motion: str, event: dict[str, Any]) -> str:
    """The context an event belongs to: its account (B2B, hybrid) or its customer (B2C)."""
    return str(event["customer_id"] if motions.get(motion).family == "b2c" else event["account_id"])


@dataclass
class Applied:
    context: dict[str, Any] | None  # the new context (None: the entity is unknown)
    added: int = 0
    already: int = 0  # events the context held already
    pending: list[dict[str, Any]] = field(default_factory=list)  # events it cannot attribute yet


def apply_events(
    motion: str, context: dict[str, Any] | None, events: list[dict[str, Any]], now: int
) -> Applied:
    """``events``: canonical event rows of one entity, ``ts`` in epoch seconds."""
    if context is None:
        return Applied(None, pending=list(events))
    b2c = motions.get(motion).family == "b2c"
    ctx = dict(context)
    ev = {k: list(v) for k, v in (ctx.get("events") or _empty(b2c)).items()}
    held = set(ev["event_id"])
    out = Applied(ctx)
    lead_row = {} if b2c else {k: j for j, k in enumerate((ctx.get("leads") or {}).get("lead_id", []))}
    for e in events:
        if e["event_id"] in held:
            out.already += 1
            continue
        if b2c:
            row = {"ts": int(e["ts"]), "type": e["type"], "session": str(e.get("session_id")),
                   "category": e.get("category"), "price": _num(e.get("price")),
                   "quantity": _num(e.get("quantity")), "event_id": e["event_id"]}  # fmt: skip
        else:
            lead = e.get("lead_id")
            if lead is not None and lead not in lead_row:
                out.pending.append(e)
                continue
            row = {"ts": int(e["ts"]), "type": e["type"], "lead": lead_row[lead] if lead is not None else -1,
                   "topic": e.get("topic"), "event_id": e["event_id"]}  # fmt: skip
        for k, v in row.items():
            ev[k].append(v)
        held.add(e["event_id"])
        out.added += 1
    if out.added:
        keep = sorted((i for i, t in enumerate(ev["ts"]) if t > now - MAX_WINDOW), key=ev["ts"].__getitem__)
        ctx["events"] = {k: [v[i] for i in keep] for k, v in ev.items()}
    return out


def _num(v: Any) -> float | None:
    return None if v is None or v != v else float(v)


def _empty(b2c: bool) -> dict[str, list[Any]]:
    names = ("ts", "type", "session", "category", "price", "quantity", "event_id") if b2c else (
        "ts", "type", "lead", "topic", "event_id")  # fmt: skip
    return {k: [] for k in names}
