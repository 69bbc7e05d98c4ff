"""Behaviour taken in as it happens: events applied to the online state, what they change re-scored, triggers
pushed. One pipeline for ``POST /events``, the Redis stream consumer and ``leadscore rescore``.

``ingest``: the events are validated as the events table is (``serving.event_rows``); those the store's
``events_in`` does not hold yet (one row per event id: a retried event counts once) are applied to their entity's
stored context (``features.online_events``, compare-and-set so two processes never lose each other's update), and
every entity whose context changed is re-scored — for B2B every lead of the account, since account intent and the
buying group are features of each; B2C customers from their contexts as columns (``Scorer.score_stored``). Reasons
are kept unworded, and worded only for the notifications that carry them. New scores go to the score-log journal
with source ``event`` (durable before the answer); each entity's latest score (``last_scores``), the triggers the
change makes (the outbox) and the events themselves (``events_in``) are written in one transaction. An event whose
entity is unknown (no context; a lead its account's context does not list) is kept ``pending`` and applied when
the entity appears: a materialization (``apply_pending``), or a ``/score`` that carries its fields (``adopt``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson

from features.online_events import CAS_TRIES, StoreApplied, apply_to_store, entity_of, mark_in, prune
from features.online_store import key
from leadscore import motions
from leadscore.store import Store, StoreUnavailable, Tx
from model.reasons import worded
from serving.context_requests import payloads, with_entity
from serving.event_rows import canonical_rows, entity_parts
from serving.log_rows import column_batches, result_batches
from serving.schemas import ScoreRequest
from serving.scorer import Scorer
from serving.triggers import fired, watched
from serving.webhooks import Dispatcher, enqueue

log = logging.getLogger("leadscore.events")
PRUNE_SECONDS = 3600.0  # how often the events taken in that left the longest window are deleted


class EventIngest:
    def __init__(self, scorer: Scorer, store: Store, journal: Any, webhook_url: str | None,
                 dispatcher: Dispatcher | None = None):  # fmt: skip
        self.scorer, self.store, self.journal = scorer, store, journal
        self.online = scorer.store
        self.webhook_url, self.dispatcher = webhook_url, dispatcher
        self._pending: dict[str, set[str]] = defaultdict(set)  # motion → entities with pending events
        self._lock = threading.Lock()
        self._pruned: float | None = None  # when events_in was last pruned (monotonic; None: not yet)
        try:
            self.refresh_pending()
        except StoreUnavailable as exc:  # a service starts with the store down; the watcher refreshes later
            log.warning("entities with pending events not read yet: %s", exc)

    # -- the pipeline
    def rows(self, motion: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Validated canonical rows (``ts`` in epoch seconds), ready for ``ingest_rows``."""
        return canonical_rows(motion, events)

    def ingest(
        self,
        motion: str,
        events: list[dict[str, Any]],
        source: str = "event",
        part: int = 10_000,
        between: Callable[[int], Any] | None = None,
    ) -> dict[str, Any]:
        """Validate the whole body (a bad row refuses it before anything is applied), then take it in by parts of
        at most ``part`` events; ``between(size)`` runs before each part (the service's events thread lets smaller
        bodies waiting go first there). The answers of the parts summed."""
        rows = self.rows(motion, events)
        out: dict[str, Any] = {}
        for chunk in entity_parts(motion, rows, part):
            if between is not None:
                between(len(chunk))
            done = self.ingest_rows(motion, chunk, source)
            out = {k: (out.get(k, 0) + v if isinstance(v, int) else v) for k, v in done.items()}
        return out or self.ingest_rows(motion, [], source)

    def ingest_rows(self, motion: str, rows: list[dict[str, Any]], source: str = "event") -> dict[str, Any]:
        """Apply, re-score, trigger and record (``rows``: from ``rows``). The events the store has not taken in
        yet are applied; they are recorded in ``events_in`` in the transaction that keeps their scores, so an
        event is recorded only once its effects are: after a crash before it, the event is taken in again when
        the caller retries, and its entity, whose context holds it already, is re-scored (``StoreApplied.held``)."""
        first: dict[str, dict] = {}
        for r in rows:
            first.setdefault(r["event_id"], r)
        fresh = self._fresh(motion, list(first.values()))
        by_entity: dict[str, list[dict]] = defaultdict(list)
        for r in fresh:
            by_entity[entity_of(motion, r)].append(r)
        applied, rescored, notes = self._apply_and_rescore(motion, by_entity, source, fresh)
        return {
            "motion": motion,
            "received": len(rows),
            "new": len(fresh),
            "duplicates": len(rows) - len(fresh),
            "pending": len(applied.pending),
            "entities_changed": len(applied.changed),
            "rescored": rescored,
            "notifications": notes,
        }

    def _fresh(self, motion: str, rows: list[dict]) -> list[dict]:
        """The events the store has not taken in yet (a retried event is not new)."""
        ids = [r["event_id"] for r in rows]
        have: set[str] = set()
        for s in range(0, len(ids), 500):
            part = ids[s : s + 500]
            have.update(r[0] for r in self.store.query_tuples(
                f"SELECT event_id FROM events_in WHERE motion = ? AND event_id IN ({','.join('?' * len(part))})",
                (motion, *part)))  # fmt: skip
        return [r for r in rows if r["event_id"] not in have]

    def _settle(self, tx: Tx, motion: str, applied: StoreApplied, fresh: list[dict] | None) -> None:
        """Within the caller's transaction: ``fresh`` events recorded in ``events_in`` as applied or pending (or,
        without them, the recorded events' states updated)."""
        if fresh is None:
            mark_in(tx, motion, applied)
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        late = set(applied.pending)
        tx.executemany(
            f"{self.store.insert_ignore()} events_in (motion, event_id, entity_id, ts, received_at, body, state) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?){self.store.on_conflict_ignore()}",
            [(motion, r["event_id"], entity_of(motion, r), r["ts"], now, orjson.dumps(r, default=str).decode(),
              "pending" if r["event_id"] in late else "applied") for r in fresh],
        )  # fmt: skip

    def _apply(self, motion: str, by_entity: dict[str, list[dict]]) -> StoreApplied:
        """Each entity's events into its stored context (which events are applied and which wait for their
        entity is recorded by the caller: ``_apply_and_rescore``)."""
        result = apply_to_store(motion, self.online, by_entity, int(time.time()))
        if result.pending:
            late = set(result.pending)
            waiting = {entity for entity, evs in by_entity.items() if any(e["event_id"] in late for e in evs)}
            with self._lock:
                self._pending[motion] |= waiting
        return result

    def _apply_and_rescore(
        self, motion: str, by_entity: dict[str, list[dict]], source: str, fresh: list[dict] | None = None
    ) -> tuple[StoreApplied, int, int]:
        """Apply, re-score what changed (and what held the events already), and record the events (``fresh``:
        new to the store; else their states) in the transaction that keeps the new scores."""
        applied = self._apply(motion, by_entity)
        touched = applied.changed + applied.held
        if touched:
            rescored, notes = self.rescore(motion, touched, source, applied=applied, fresh=fresh)
            return applied, rescored, notes
        with self.store.transaction() as tx:
            self._settle(tx, motion, applied, fresh)
        return applied, 0, 0

    # -- re-scoring
    def _stored(self, motion: str, entities: list[str], contexts: dict[str, dict] | None) -> list[dict]:
        """The stored contexts of ``entities`` that exist (JSON form); ``contexts``: the ones just written, by
        entity (not read again)."""
        if contexts is not None:
            return [contexts[e] for e in entities]
        return [orjson.loads(raw) for raw in self.online.get_many([key(motion, e) for e in entities]) if raw]

    def requests_for(
        self,
        motion: str,
        entities: list[str],
        as_of: int | None = None,
        contexts: dict[str, dict] | None = None,
    ) -> list[ScoreRequest]:
        """Score requests rebuilt from the stored contexts (B2B: one per lead of each account)."""
        return [
            ScoreRequest.model_validate(payload | {"as_of": as_of})
            for ctx in self._stored(motion, entities, contexts)
            for payload in payloads(motion, ctx)
        ]

    def rescore(
        self,
        motion: str,
        entities: list[str],
        source: str,
        as_of: int | None = None,
        applied: StoreApplied | None = None,
        fresh: list[dict] | None = None,
    ) -> tuple[int, int]:
        """Re-score every lead (or customer) of ``entities``; journal the scores, keep each one as the entity's
        latest, and write the triggers it makes to the outbox (with ``applied``, the events just applied: from the
        contexts they wrote, and the events recorded in the same transaction: ``_settle``). Returns (leads or
        customers re-scored, notifications)."""
        contexts = applied.contexts if applied is not None else None
        if motions.get(motion).family == "b2c":
            states = self._score_customers(motion, self._stored(motion, entities, contexts), source, as_of)
        else:
            states = self._score_leads(motion, entities, source, as_of, applied)
        if not states:
            if applied is not None:
                with self.store.transaction() as tx:
                    self._settle(tx, motion, applied, fresh)
            return 0, 0
        notes = self._remember(motion, states, applied, fresh)
        if notes and self.dispatcher is not None:
            self.dispatcher.wake()
        return len(states), notes

    def _score_customers(
        self, motion: str, contexts: list[dict], source: str, as_of: int | None
    ) -> list[dict]:
        """Customers scored from their contexts as columns (``Scorer.score_stored``), journaled (durable before
        anything says "re-scored"); each one's latest state."""
        states: list[dict] = []
        for s in range(0, len(contexts), 1000):
            r = self.scorer.score_stored(motion, contexts[s : s + 1000], as_of)  # (no champion: a UserError)
            self.journal.append_batches(column_batches(r, source))
            keep = watched(self.scorer.models[motion].conf)
            kept = {k: r["_features"][k].tolist() if k in r["_features"] else None for k in keep}
            for i, (entity, score, tier, route, owner, sla, why) in enumerate(zip(
                r["lead_id"], r["score"].tolist(), r["tier"], r["route"], r["owner"], r["sla_minutes"], r["reasons"],
                strict=True,
            )):  # fmt: skip
                states.append({"entity_id": entity, "account_id": None, "score": score, "tier": tier,
                               "route": route, "owner": owner, "sla_minutes": sla,
                               "features": {k: v[i] if v is not None else None for k, v in kept.items()},
                               "reasons": why})  # fmt: skip
        return states

    def _score_leads(
        self, motion: str, entities: list[str], source: str, as_of: int | None, applied: StoreApplied | None
    ) -> list[dict]:
        """Every lead of the accounts scored as /score would (a request per lead), journaled; each one's latest
        state."""
        reqs = self.requests_for(motion, entities, as_of, applied.contexts if applied is not None else None)
        written = applied.written() if applied is not None else None
        results: list[dict] = []
        for s in range(0, len(reqs), 1000):
            results += self.scorer.score_many(reqs[s : s + 1000], written, worded=False)
        if not results:
            return []
        self.journal.append_batches(result_batches(results, source))
        keep = watched(self.scorer.models[motion].conf)
        return [
            {"entity_id": r["lead_id"], "account_id": r.get("_account_id"), "score": r["score"], "tier": r["tier"],
             "route": r["route"], "owner": r["owner"], "sla_minutes": r["sla_minutes"],
             "features": {k: r["_features"].get(k) for k in keep}, "reasons": r["reasons"]}
            for r in results
        ]  # fmt: skip

    def _remember(
        self,
        motion: str,
        states: list[dict],
        applied: StoreApplied | None = None,
        fresh: list[dict] | None = None,
    ) -> int:
        """Each entity's new state kept as its latest score, the triggers its change from the previous one makes
        written to the outbox (and, with ``applied``, the events recorded: ``_settle``), in one transaction."""
        conf, words = self.scorer.models[motion].conf, self.scorer.models[motion].model.words
        ids = [st["entity_id"] for st in states]
        old: dict[str, dict] = {}
        for s in range(0, len(ids), 500):
            part = ids[s : s + 500]
            for r in self.store.query(
                f"SELECT entity_id, score, tier, route, body FROM last_scores WHERE motion = ? AND entity_id IN "
                f"({','.join('?' * len(part))})", (motion, *part)):  # fmt: skip
                old[r["entity_id"]] = orjson.loads(r["body"])
        now = time.time()
        latest, notices = [], []
        for state in states:
            for f in fired(
                conf, old.get(state["entity_id"]), state, now, lambda reasons: worded(reasons, words)
            ):
                url = f.trigger.url or self.webhook_url
                if url:
                    notices.append((f.dedupe_key, url, f.body))
            latest.append((motion, state["entity_id"], state["account_id"], int(now), state["score"], state["tier"],
                           state["route"], orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode()))  # fmt: skip
        upsert = (
            "INSERT INTO last_scores (motion, entity_id, account_id, scored_at, score, tier, route, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (motion, entity_id) DO UPDATE SET "
            "account_id = excluded.account_id, scored_at = excluded.scored_at, score = excluded.score, "
            "tier = excluded.tier, route = excluded.route, body = excluded.body"
        )
        with self.store.transaction() as tx:
            if applied is not None:
                self._settle(tx, motion, applied, fresh)
            tx.executemany(upsert, latest)
            n = enqueue(tx, notices, (self.store.insert_ignore(), self.store.on_conflict_ignore()))
        return n

    def prune_due(self) -> int:
        """Every ``PRUNE_SECONDS``: the events taken in that left the longest feature window deleted, for every
        motion (``features.online_events.prune``; two processes doing it at once delete each row once). Returns the
        rows deleted. A prune that fails (the store is down) is tried again at the next call, not an hour later."""
        if self._pruned is not None and time.monotonic() - self._pruned < PRUNE_SECONDS:
            return 0
        gone = sum(prune(self.store, m, int(time.time())) for m in motions.MOTIONS)
        self._pruned = time.monotonic()
        if gone:
            log.info("deleted %d events older than the longest feature window", gone)
        return gone

    # -- entities that appear later
    def refresh_pending(self) -> None:
        rows = self.store.query(
            "SELECT DISTINCT motion, entity_id FROM events_in WHERE state <> 'applied' AND state = 'pending'"
        )  # (the first term: the partial index of waiting events)
        fresh: dict[str, set[str]] = defaultdict(set)
        for r in rows:
            fresh[r["motion"]].add(r["entity_id"])
        with self._lock:
            self._pending = fresh

    def waiting(self, motion: str, entity: str) -> bool:
        return entity in self._pending.get(motion, ())

    def apply_pending(
        self, motion: str, entities: list[str] | None = None, source: str = "event"
    ) -> dict[str, int]:
        """Apply the pending events of ``entities`` (default: all) whose entity the online state now knows."""
        sql = "SELECT body FROM events_in WHERE motion = ? AND state <> 'applied'"  # pending, or received (a crash)
        rows = self.store.query(sql, (motion,))
        by_entity: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            e = orjson.loads(r["body"])
            if entities is None or entity_of(motion, e) in entities:
                by_entity[entity_of(motion, e)].append(e)
        applied, rescored, notes = self._apply_and_rescore(motion, by_entity, source)
        self.refresh_pending()
        return {"entities_changed": len(applied.changed), "still_pending": len(applied.pending), "rescored": rescored,
                "notifications": notes}  # fmt: skip

    def adopt(self, req: ScoreRequest) -> dict[str, int] | None:
        """A /score request for an entity with pending events: its fields join the stored context (a new
        context, or a lead its account's context lacks), then its pending events are applied."""
        motion = req.motion
        m = motions.get(motion)
        entity = req.customer.customer_id if m.family == "b2c" else req.lead.account_id  # type: ignore[union-attr]
        if not self.waiting(motion, entity):
            return None
        k = key(motion, entity)
        for _ in range(CAS_TRIES):
            raw = self.online.get_many([k])[0]
            ctx = with_entity(motion, orjson.loads(raw) if raw else None, req)
            if ctx is None or self.online.compare_and_set(k, raw, orjson.dumps(ctx).decode()):
                break
        return self.apply_pending(motion, [entity])
