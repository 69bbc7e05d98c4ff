"""Materialization: every account's (or customer's) context as it stood at ``as_of``, written to the online
store — what a request cannot carry: firmographics, the account's contacts and roles, the last 90 days of
events, past orders."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from features.frames import B2B_CODE, B2BFrame, B2CFrame
from features.online_store import OnlineStore, key
from features.point_in_time import frame_as_of
from features.prepare import Prepared
from leadscore.config import MotionConfig


def _grouped(keys: np.ndarray) -> dict[int, np.ndarray]:
    """Row indices per key value: one stable sort, then a slice per group."""
    if len(keys) == 0:
        return {}
    order = np.argsort(keys, kind="stable")
    cuts = np.flatnonzero(np.diff(keys[order])) + 1
    return {
        int(keys[order[s]]): order[s:e] for s, e in zip(np.r_[0, cuts], np.r_[cuts, len(keys)], strict=True)
    }


NONE = np.zeros(0, dtype=np.int64)


def _nan_none(a: np.ndarray) -> list:
    return [None if v != v else float(v) for v in a.tolist()]


def _names(codes: np.ndarray, vocab: np.ndarray) -> list:
    return [vocab[c] if c >= 0 else None for c in codes.tolist()]


def _local(codes: np.ndarray, keep_none: bool) -> tuple[list[int], list[int]]:
    """A customer's codes into the frame's vocabulary renumbered in order of first appearance, and the frame's
    codes they stand for; -1 (none) is a code of its own with ``keep_none``, else stays -1."""
    new: dict[int, int] = {}
    local = [new.setdefault(g, len(new)) if g >= 0 or keep_none else -1 for g in codes.tolist()]
    return local, list(new)


def materialize(p: Prepared, as_of: int, conf: MotionConfig, store: OnlineStore) -> int:
    """Write every account's (or customer's) context as it stood at ``as_of``; returns entities written."""
    fr, keep = frame_as_of(p, as_of)
    motion = conf.motion
    if isinstance(fr, B2CFrame):
        return store.put_many(_b2c_contexts(motion, fr, p.entity_ids[keep], p.vocab, p.event_ids))
    assert p.account_ids is not None  # a B2B frame has accounts
    return store.put_many(_b2b_contexts(motion, fr, p.entity_ids[keep], p.account_ids, p.vocab, p.event_ids))


def _b2b_contexts(
    motion: str,
    fr: B2BFrame,
    lead_ids: np.ndarray,
    account_ids: np.ndarray,
    vocab: dict[str, np.ndarray],
    event_ids,
) -> Iterator[tuple[str, str]]:
    leads_of, events_of = _grouped(fr.lead_account), _grouped(fr.ev_account)
    types = np.asarray(list(B2B_CODE), dtype=object)
    for a in sorted(set(events_of) | set(leads_of)):
        li, ei = leads_of.get(a, NONE), events_of.get(a, NONE)
        local = {int(g): i for i, g in enumerate(li)}
        ctx = {
            "account": {
                "account_id": account_ids[a],
                "industry": fr.acc_industry[a],
                "employee_count": _nan_none(fr.acc_employees[a : a + 1])[0],
                "annual_revenue": _nan_none(fr.acc_revenue[a : a + 1])[0],
                "region": fr.acc_region[a],
            },
            "leads": {
                "lead_id": lead_ids[li].tolist(),
                "created": fr.lead_created[li].tolist(),
                "role": fr.lead_role[li].tolist(),
                "seniority": _nan_none(fr.lead_seniority[li]),
                "business": fr.lead_business[li].tolist(),
                "stage": fr.lead_stage[li].tolist(),
            },
            "events": {
                "ts": fr.ev_ts[ei].tolist(),
                "type": types[fr.ev_type[ei]].tolist(),
                "lead": [local.get(int(x), -1) if x >= 0 else -1 for x in fr.ev_lead[ei]],
                "topic": _names(fr.ev_topic[ei], vocab["topic"]),
                "event_id": event_ids.iloc[fr.ev_pos[ei]].tolist(),
            },
        }
        yield key(motion, str(account_ids[a])), json.dumps(ctx, separators=(",", ":"), allow_nan=False)


def _b2c_contexts(
    motion: str, fr: B2CFrame, customer_ids: np.ndarray, vocab: dict[str, np.ndarray], event_ids
) -> Iterator[tuple[str, str]]:
    events_of, orders_of = _grouped(fr.ev_cust), _grouped(fr.ord_cust)
    session_names, category_names = vocab["session"], vocab["category"]
    for c in range(fr.n):
        ei, oi = events_of.get(c, NONE), orders_of.get(c, NONE)
        session, sessions = _local(fr.ev_session[ei], keep_none=True)
        category, categories = _local(fr.ev_category[ei], keep_none=False)
        ctx = {
            "customer": {
                "customer_id": customer_ids[c],
                "created": int(fr.cust_created[c]),
                "channel": fr.cust_channel[c],
                "device": fr.cust_device[c],
                "consent_email": bool(fr.cust_consent_email[c]),
                "consent_sms": bool(fr.cust_consent_sms[c]),
            },
            "events": {  # coded (features.b2c_events)
                "ts": fr.ev_ts[ei].tolist(),
                "type": fr.ev_type[ei].tolist(),
                "session": session,
                "category": category,
                "price": _nan_none(fr.ev_price[ei]),
                "quantity": _nan_none(fr.ev_qty[ei]),
                "event_id": event_ids.iloc[fr.ev_pos[ei]].tolist(),
                "sessions": [str(session_names[g]) if g >= 0 else "None" for g in sessions],
                "categories": [category_names[g] for g in categories],
            },
            "orders": {"ts": fr.ord_ts[oi].tolist(), "amount": fr.ord_amount[oi].tolist()},
        }
        yield key(motion, str(customer_ids[c])), json.dumps(ctx, separators=(",", ":"), allow_nan=False)
