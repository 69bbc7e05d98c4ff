"""Online features: leads (or customers) at request time, from the request payloads plus their stored contexts.

A batch of requests becomes one frame with one pseudo-account (or customer) per request — the stored context
with the request merged over it (payload wins; events deduplicated by id) — and the *same* ``features.compute``
functions run on it, so online and historical values are identical for the same entity and as-of. No pandas on
this path: only the request's own fields and events are handled item by item, the stored part of the frame is
assembled with whole-batch array operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from features.compute import compute
from features.contexts import B2BContext, B2CContext, ContextMemo, b2c_frame_of, customer_fields
from features.definitions import FeatureSet, feature_set
from features.frames import B2C_CODE, B2BFrame, B2CFrame, object_array, spans
from features.online_store import OnlineStore
from features.point_in_time import restrict
from features.request_frame import (
    RequestTable,
    add_each,
    b2b_assemble,
    b2b_from_columns,
    b2b_from_payloads,
    context_column,
    join_arrays,
    new_events,
)
from leadscore import motions
from leadscore.config import MotionConfig
from leadscore.errors import ItemError, UserError
from leadscore.times import epoch_seconds


class OnlineFeatures:
    """Computes entities' features for a motion from request payloads and the online store.

    The shared ``compute`` runs once for a whole batch; stored contexts come decoded from a ``ContextMemo`` of
    ``memo_mb`` megabytes.
    """

    def __init__(
        self, conf: MotionConfig, store: OnlineStore | None, fs: FeatureSet | None = None, memo_mb: float = 64
    ):
        self.conf = conf
        self.fs = fs or feature_set(conf.feature_set)
        self.memo = ContextMemo(conf.motion, store, memo_mb)

    def compute(self, payload: dict, as_of: int) -> dict[str, Any]:
        try:
            return self.compute_many([payload], as_of)[0]
        except ItemError as exc:
            raise UserError(str(exc)) from None

    def compute_many(self, payloads: list[dict], as_of: int) -> list[dict[str, Any]]:
        """One dict of feature values per payload, all as of ``as_of``; a bad payload raises ItemError."""
        return rows_of(self.compute_columns(payloads, as_of)) if payloads else []

    def compute_columns(
        self,
        payloads: list[dict],
        as_of: int,
        degraded: list[str] | None = None,
        written: Mapping[str, tuple[str, dict]] | None = None,
    ) -> dict[str, np.ndarray]:
        """The feature values of the payloads as columns (row i: payload i); a bad payload raises ItemError.
        ``degraded`` gets "online_store" when the stored contexts could not be read (scored without them);
        ``written``: contexts just stored, by entity id (``ContextMemo.read``)."""
        if not payloads:
            raise ValueError("compute_columns needs at least one payload")
        whole: B2BFrame | B2CFrame
        if motions.get(self.conf.motion).family == "b2c":
            whole = self._b2c_frame(payloads, degraded, written)
            n = whole.n
        else:
            whole = self._b2b_frame(payloads, degraded, written)
            n = whole.n_leads
        return self._rows(whole, n, len(payloads), as_of)

    def _rows(self, whole: B2BFrame | B2CFrame, n: int, requests: int, as_of: int) -> dict[str, np.ndarray]:
        """The features of the frame's first ``requests`` entities (request i is row i: its lead, or its
        customer) as of ``as_of``."""
        fr, keep = restrict(whole, as_of)
        position = np.full(n, -1, dtype=np.int64)
        position[keep] = np.arange(len(keep))
        row = position[:requests]
        if (row < 0).any():
            i = int(np.flatnonzero(row < 0)[0])
            raise ItemError(i, f"the entity was created after as_of ({as_of}); nothing to score yet")
        return {k: v[row] for k, v in compute(fr, as_of, self.conf, self.fs).items()}

    def _contexts(
        self,
        keys: list[str],
        degraded: list[str] | None,
        written: Mapping[str, tuple[str, dict]] | None = None,
    ) -> list[Any]:
        contexts, failed = self.memo.read(keys, written)
        if failed and degraded is not None:
            degraded.append("online_store")
        return contexts

    def _b2b_frame(
        self, payloads: list[dict], degraded: list[str] | None, written: Mapping[str, tuple[str, dict]] | None
    ) -> B2BFrame:
        """Rows 0..n-1: the request leads; then each account's other stored contacts. Events: the stored ones,
        then the request's new ones."""
        ctxs: list[B2BContext] = self._contexts(
            [str(p["lead"]["account_id"]) for p in payloads], degraded, written
        )
        return b2b_assemble(b2b_from_payloads(payloads, ctxs), ctxs)

    def compute_table(
        self, table: RequestTable, as_of: int, degraded: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """``compute_columns`` for requests given as columns (``POST /score_columns``): B2B and hybrid leads
        become the frame with whole-column operations (row i: lead i, the same frame the payload path builds);
        B2C customers go through their payloads. A bad row raises ItemError."""
        if motions.get(self.conf.motion).family == "b2c":
            return self.compute_columns(table.payloads(), as_of, degraded)
        lead = table.entity
        ctxs: list[B2BContext] = self._contexts([str(a) for a in lead["account_id"]], degraded)
        whole = b2b_assemble(b2b_from_columns(table, ctxs), ctxs)
        return self._rows(whole, whole.n_leads, table.n, as_of)

    def compute_stored(self, contexts: list[dict], as_of: int) -> dict[str, np.ndarray]:
        """The features of B2C customers from their stored contexts alone (their JSON form; row i: context i), as a
        request that carries only the stored customer fields would get them: re-scores after events and decay."""
        frame = b2c_frame_of(contexts, [c.get("customer") or {} for c in contexts])
        return self._rows(frame, frame.n, len(contexts), as_of)

    def _b2c_frame(
        self, payloads: list[dict], degraded: list[str] | None, written: Mapping[str, tuple[str, dict]] | None
    ) -> B2CFrame:
        """Customer i is request i; events and orders: the stored ones, then the request's new ones."""
        n = len(payloads)
        cust: dict[str, list[Any]] = {k: [] for k in _CUSTOMER}
        ev: dict[str, list[Any]] = {
            k: [] for k in ("ts", "type", "cust", "session", "category", "price", "qty")
        }
        orders: dict[str, list[Any]] = {k: [] for k in ("cust", "ts", "amount")}
        n_sessions = np.zeros(n, dtype=np.int64)
        categories: dict[str, int] = {}
        ctxs: list[B2CContext] = self._contexts(
            [str(p["customer"]["customer_id"]) for p in payloads], degraded, written
        )
        add_each(
            payloads, ctxs, lambda i, p, c: _b2c_request(i, p, c, cust, ev, orders, n_sessions, categories)
        )
        session_base, _ = spans(n_sessions.tolist())  # each customer's sessions get their own range of codes
        _, ev_owner = spans([len(c.ev_ts) for c in ctxs])
        c_start, _ = spans([len(c.categories) for c in ctxs])
        codes = np.array(
            [categories.setdefault(x, len(categories)) for c in ctxs for x in c.categories] + [-1], np.int64
        )
        local = context_column(ctxs, "ev_category")
        ev_category = codes[np.where(local >= 0, c_start[ev_owner] + local, len(codes) - 1)]
        _, ord_owner = spans([len(c.ord_ts) for c in ctxs])

        def both(name: str, dtype, request: str) -> np.ndarray:
            return join_arrays(context_column(ctxs, name), np.array(ev[request], dtype))

        return B2CFrame(
            cust_created=np.array(cust["created"], dtype=np.int64),
            cust_channel=object_array(cust["channel"]),
            cust_device=object_array(cust["device"]),
            cust_consent_email=np.array(cust["consent_email"], np.float64),
            cust_consent_sms=np.array(cust["consent_sms"], np.float64),
            ev_ts=both("ev_ts", np.int64, "ts"),
            ev_type=both("ev_type", np.int8, "type"),
            ev_cust=join_arrays(ev_owner, np.array(ev["cust"], np.int64)),
            ev_pos=np.full(len(ev_owner) + len(ev["ts"]), -1, dtype=np.int64),
            ev_session=join_arrays(
                session_base[ev_owner] + context_column(ctxs, "ev_session"),
                session_base[np.array(ev["cust"], np.int64)] + np.array(ev["session"], np.int64),
            ),
            ev_category=join_arrays(ev_category, np.array(ev["category"], np.int64)),
            ev_price=both("ev_price", np.float64, "price"),
            ev_qty=both("ev_qty", np.float64, "qty"),
            ord_cust=join_arrays(ord_owner, np.array(orders["cust"], np.int64)),
            ord_ts=join_arrays(context_column(ctxs, "ord_ts"), np.array(orders["ts"], np.int64)),
            ord_amount=join_arrays(
                context_column(ctxs, "ord_amount"), np.array(orders["amount"], np.float64)
            ),
        )


_CUSTOMER = ("created", "channel", "device", "consent_email", "consent_sms")  # customer_fields' order


def rows_of(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Columns of feature values as one dict of plain Python values per row."""
    lists = [v.tolist() for v in columns.values()]
    return [dict(zip(columns, r, strict=True)) for r in zip(*lists, strict=True)]


def _b2c_request(
    i: int,
    payload: dict,
    c: B2CContext,
    cust: dict,
    ev: dict,
    orders: dict,
    n_sessions: np.ndarray,
    categories: dict[str, int],
) -> None:
    """Request i's customer fields over the stored ones, its events the context lacks and its orders. Its
    events' sessions get codes local to the customer (the stored ones first, then new ones); ``n_sessions[i]``
    says how many it has."""
    for name, v in zip(_CUSTOMER, customer_fields(c.customer, payload["customer"]), strict=True):
        cust[name].append(v)
    new: dict[str, int] = {}
    for e in new_events(payload.get("events"), c.event_ids):
        ev["ts"].append(epoch_seconds(e["ts"]))
        ev["type"].append(B2C_CODE[e["type"]])
        ev["cust"].append(i)
        s = str(e.get("session_id"))
        k = c.sessions.get(s)
        ev["session"].append(k if k is not None else len(c.sessions) + new.setdefault(s, len(new)))
        x = e.get("category")
        ev["category"].append(categories.setdefault(x, len(categories)) if x is not None else -1)
        ev["price"].append(e.get("price"))
        ev["qty"].append(e.get("quantity"))
    n_sessions[i] = len(c.sessions) + len(new)
    for o in payload.get("orders") or []:
        orders["cust"].append(i)
        orders["ts"].append(epoch_seconds(o["ts"]))
        orders["amount"].append(float(o["amount"]))
