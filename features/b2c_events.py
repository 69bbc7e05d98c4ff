"""A customer's events as its stored context keeps them (B2C): one list per field, with the text fields coded —
``type`` by the motion's event types (``B2C_CODE``), ``session`` and ``category`` into the context's own lists
``sessions`` and ``categories`` (-1: no category). Reading a stored context then makes small integers, which
Python shares, instead of a new string per event and field, and the feature frame takes the codes as they are.

A context stored before codes existed (each event's text) reads the same (``coded``) and is stored coded the next
time events arrive for it."""

from __future__ import annotations

from typing import Any

from features.frames import B2C_CODE

EVENT_FIELDS = ("ts", "type", "session", "category", "price", "quantity", "event_id")  # one value per event
VOCABULARIES = ("sessions", "categories")  # what the session and category codes stand for


def empty() -> dict[str, list]:
    return {k: [] for k in EVENT_FIELDS + VOCABULARIES}


def coded(ev: dict[str, list] | None) -> dict[str, list]:
    """A context's events in the coded form: as they are when coded already, else coded (session ids read as
    text, as a request's are; codes in order of first appearance)."""
    if not ev:
        return empty()
    if "sessions" in ev:
        return ev
    sessions: dict[str, int] = {}
    categories: dict[Any, int] = {}
    return {
        "ts": list(ev["ts"]),
        "type": [B2C_CODE[t] if isinstance(t, str) else t for t in ev["type"]],
        "session": [sessions.setdefault(str(s), len(sessions)) for s in ev["session"]],
        "category": [
            categories.setdefault(c, len(categories)) if c is not None else -1 for c in ev["category"]
        ],
        "price": list(ev["price"]),
        "quantity": list(ev["quantity"]),
        "event_id": list(ev["event_id"]),
        "sessions": list(sessions),
        "categories": list(categories),
    }


def code_of(names: list, name: Any, index: dict | None = None) -> int:
    """``name``'s code in ``names``, added when it is new. ``index``: name → code, kept in step (for many names
    at once); without it a search from the end (an event's session is most often one of the latest)."""
    if index is not None:
        k = index.get(name)
        if k is None:
            k = index[name] = len(names)
            names.append(name)
        return k
    for k in range(len(names) - 1, -1, -1):
        if names[k] == name:
            return k
    names.append(name)
    return len(names) - 1


def compacted(ev: dict[str, list]) -> dict[str, list]:
    """After events left the window: when a vocabulary has grown past the events (some of its entries are no
    longer used), it is cut to the entries in use, renumbered in order of first use. Bounds a long-lived
    context's vocabularies by its events."""
    n = len(ev["ts"])
    for codes, names in (("session", "sessions"), ("category", "categories")):
        if len(ev[names]) > n:
            new: dict[int, int] = {}
            ev[codes] = [new.setdefault(c, len(new)) if c >= 0 else -1 for c in ev[codes]]
            ev[names] = [ev[names][c] for c in new]
    return ev
