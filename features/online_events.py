"""Events applied to a stored context as they happen, in the form materialization writes, so the online features
after them equal those of a materialization that includes them (``tests/code/test_online_events.py``).

Pure functions over a context's JSON form: a context (an account's for B2B and hybrid, a customer's for B2C) is
read, the events it does not hold yet (by ``event_id``) are appended in time order, events that have left the
longest feature window are dropped, and the caller writes it back. An event whose entity the context does not
know (no context; a lead the account's context does not list) cannot be attributed yet: it is returned as
pending, to be applied once the entity appears.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson

from features.b2c_events import VOCABULARIES, code_of, coded, compacted
from features.frames import B2C_CODE
from features.online_store import OnlineStore, key
from features.point_in_time import MAX_WINDOW
from leadscore import motions
from leadscore.store import Store, Tx

CAS_TRIES = 20


B2C_MOTIONS = frozenset(name for name, m in motions.MOTIONS.items() if m.family == "b2c")
ENTITY_FIELD = {
    name: "customer_id" if m.family == "b2c" else "account_id" for name, m in motions.MOTIONS.items()
}


def entity_of(motion: str, event: dict[str, Any]) -> str:
    """The context an event belongs to: its account (B2B, hybrid) or its customer (B2C)."""
    return str(event[ENTITY_FIELD[motion]])


@dataclass
class Applied:
    context: dict[str, Any] | None  # the new context (None: the entity is unknown)
    added: int = 0
    already: int = 0  # events the context held already
    pending: list[dict[str, Any]] = field(default_factory=list)  # events it cannot attribute yet


def apply_events(
    motion: str, context: dict[str, Any] | None, events: list[dict[str, Any]], now: int, owned: bool = False
) -> Applied:
    """``events``: canonical event rows of one entity, ``ts`` in epoch seconds. ``owned``: the caller hands the
    context over (just decoded from its text), so its lists are appended to rather than copied."""
    if context is None:
        return Applied(None, pending=list(events))
    b2c = motion in B2C_MOTIONS
    ctx = context if owned else dict(context)
    stored = ctx.get("events")
    ev: dict[str, list] = coded(stored) if b2c else stored or _empty_b2b()
    if ev is stored and not owned:
        ev = {k: list(v) for k, v in ev.items()}
    # Many events at once: the held ids and the vocabularies indexed. A few: searched, the ids in the context's own
    # list, which grows as each event lands.
    many = len(events) > 8
    held: set[str] | list[str] = set(ev["event_id"]) if many else ev["event_id"]
    out = Applied(ctx)
    lead_row = {} if b2c else {k: j for j, k in enumerate((ctx.get("leads") or {}).get("lead_id", []))}
    sessions: dict[Any, int] | None = None
    categories: dict[Any, int] | None = None
    if b2c and many:
        sessions = {name: j for j, name in enumerate(ev["sessions"])}
        categories = {name: j for j, name in enumerate(ev["categories"])}
    ordered: bool | None = None  # the stored events in time order (checked once, when an event arrives late)
    for e in events:
        if e["event_id"] in held:
            out.already += 1
            continue
        if b2c:
            c = e.get("category")
            row = {"ts": int(e["ts"]), "type": B2C_CODE[e["type"]],
                   "session": code_of(ev["sessions"], str(e.get("session_id")), sessions),
                   "category": code_of(ev["categories"], c, categories) if c is not None else -1,
                   "price": _num(e.get("price")), "quantity": _num(e.get("quantity")), "event_id": e["event_id"]}  # fmt: skip
        else:
            lead = e.get("lead_id")
            if lead is not None and lead not in lead_row:
                out.pending.append(e)
                continue
            row = {"ts": int(e["ts"]), "type": e["type"], "lead": lead_row[lead] if lead is not None else -1,
                   "topic": e.get("topic"), "event_id": e["event_id"]}  # fmt: skip
        ts = ev["ts"]
        if ts and row["ts"] < ts[-1] and (ordered := ordered if ordered is not None else ts == sorted(ts)):
            at = bisect.bisect_right(ts, row["ts"])  # where the stable sort in _in_window would put it
            for k, v in row.items():
                ev[k].insert(at, v)
        else:
            for k, v in row.items():
                ev[k].append(v)
        if isinstance(held, set):
            held.add(e["event_id"])
        out.added += 1
    if out.added:
        ctx["events"] = _in_window(ev, now - MAX_WINDOW)
    return out


def _in_window(ev: dict[str, list], cutoff: int) -> dict[str, list]:
    """The events after ``cutoff`` in time order (a stable sort: events at the same second keep their order).
    When they are in order already — new events are mostly the latest — only the expired head is cut off. A B2C
    context's vocabularies are kept (cut to what is still used once they outgrow the events: ``compacted``)."""
    ts = ev["ts"]
    vocab = {k: ev[k] for k in VOCABULARIES if k in ev}
    if ts == sorted(ts):  # then the stable sort is the identity
        first = bisect.bisect_right(ts, cutoff)
        if not first:
            return ev
        out = {k: v[first:] for k, v in ev.items() if k not in vocab}
    else:
        keep = sorted((i for i, t in enumerate(ts) if t > cutoff), key=ts.__getitem__)
        out = {k: [v[i] for i in keep] for k, v in ev.items() if k not in vocab}
    return compacted(out | vocab) if vocab else out


@dataclass
class StoreApplied:
    changed: list[str]  # entities whose context changed
    applied: list[str]  # event ids now in a context (or that were already)
    pending: list[str]  # event ids whose entity is unknown
    held: list[str] = field(default_factory=list)  # entities whose context held all their events already
    # the changed and held ones' contexts as stored, and their stored text
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    def written(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """The changed and held contexts as ``ContextMemo.read`` takes them: by entity, (stored text, JSON form)."""
        return {e: (self.texts[e], c) for e, c in self.contexts.items()}


def apply_to_store(
    motion: str, online: OnlineStore, by_entity: dict[str, list[dict]], now: int
) -> StoreApplied:
    """Each entity's events into its stored context, read and written back with compare-and-set (two processes
    applying events to one context never lose each other's update: the loser reads again)."""
    out = StoreApplied([], applied=[], pending=[])
    entities = list(by_entity)
    raws: dict[str, str | None] = {}
    done: dict[str, Applied] = {}
    texts: dict[str, str] = {}
    todo = entities
    for _ in range(CAS_TRIES):  # the contexts another process wrote first are read again, together
        raws |= dict(zip(todo, online.get_many([key(motion, e) for e in todo]), strict=True))  # one read
        done |= {e: apply_events(motion, _context(raws[e]), by_entity[e], now, owned=True) for e in todo}
        writes = [e for e in todo if done[e].added]
        for e in todo:
            texts.pop(e, None)  # (the text of a try that did not land)
        texts |= {e: orjson.dumps(done[e].context).decode() for e in writes}
        landed = online.compare_and_set_many(
            [(key(motion, e), raws[e], texts[e]) for e in writes]
        )  # one write
        if not (todo := [e for e, ok in zip(writes, landed, strict=True) if not ok]):
            break
    else:
        raise RuntimeError(
            f"{len(todo)} {motion} contexts changed {CAS_TRIES} times while events were applied"
        )
    for entity, evs in by_entity.items():
        late = {e["event_id"] for e in done[entity].pending}
        if done[entity].added:
            out.changed.append(entity)
            out.contexts[entity] = done[entity].context  # type: ignore[assignment]
            out.texts[entity] = texts[entity]
        elif done[entity].already and done[entity].context is not None:
            out.held.append(entity)  # (applied before this call: by another process, or before a crash)
            out.contexts[entity] = done[entity].context  # type: ignore[assignment]
            out.texts[entity] = texts.get(entity) or raws[entity]  # type: ignore[assignment]
        out.pending += sorted(late)
        out.applied += [e["event_id"] for e in evs if e["event_id"] not in late]
    return out


def mark(store: Store, motion: str, result: StoreApplied) -> None:
    """Record in ``events_in`` which events are applied and which wait for their entity (one transaction, a
    statement per 500 ids)."""
    with store.transaction() as tx:
        mark_in(tx, motion, result)


def mark_in(tx: Tx, motion: str, result: StoreApplied) -> None:
    """``mark`` within a transaction of the caller's (which lands with it, or not at all)."""
    for state, ids in (("applied", result.applied), ("pending", result.pending)):
        for s in range(0, len(ids), 500):
            part = ids[s : s + 500]
            tx.execute(
                f"UPDATE events_in SET state = '{state}' WHERE motion = ? AND event_id IN "
                f"({','.join('?' * len(part))})",
                (motion, *part),
            )


def replay(motion: str, store: Store, online: OnlineStore, now: int) -> StoreApplied:
    """After a materialization rewrote the contexts from the tables: the events taken in live (``events_in``,
    within the longest window) applied again, so none is lost, and those that were pending applied if their
    entity is known now."""
    rows = store.query("SELECT body FROM events_in WHERE motion = ? AND ts > ?", (motion, now - MAX_WINDOW))
    by_entity: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        e = orjson.loads(r["body"])
        by_entity[entity_of(motion, e)].append(e)
    result = apply_to_store(motion, online, by_entity, now)
    mark(store, motion, result)
    return result


def prune(store: Store, motion: str, now: int, part: int = 10_000) -> int:
    """Forget the events taken in whose time has left the longest feature window: no context keeps them (applied
    again, they would be cut at once) and ``replay`` reads only newer ones, so ``events_in`` stays as large as the
    window, not the whole history. A copy of such an event sent again counts as new, and changes no feature.
    Deleted ``part`` rows a statement, so a long backlog never holds the store's writers up for long. Returns the
    rows deleted."""
    sql = (
        "DELETE FROM events_in WHERE motion = ? AND event_id IN "
        "(SELECT event_id FROM events_in WHERE motion = ? AND ts <= ? LIMIT ?)"
    )
    gone = 0
    while (n := store.execute(sql, (motion, motion, now - MAX_WINDOW, part))) > 0:
        gone += n
        if n < part:
            break
    return gone


def _context(raw: str | None) -> dict[str, Any] | None:
    return orjson.loads(raw) if raw else None


def _num(v: Any) -> float | None:
    return None if v is None or v != v else float(v)


def _empty_b2b() -> dict[str, list[Any]]:
    return {k: [] for k in ("ts", "type", "lead", "topic", "event_id")}
