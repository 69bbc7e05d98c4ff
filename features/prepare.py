"""Canonical tables as arrays, once: ``prepare`` turns validated tables into the frame every point-in-time
computation reads (event ids deduplicated, events of unknown entities dropped, both counted)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.frames import B2B_CODE, B2C_CODE, ROLE_CODE, STAGE_RANK, B2BFrame, B2CFrame
from leadscore import motions
from leadscore.motions import SENIORITIES
from leadscore.schema import DropReport

SENIORITY_RANK = {s: float(i) for i, s in enumerate(SENIORITIES)}


@dataclass
class Prepared:
    """A motion's tables as arrays, ready for any number of as-of computations."""

    motion: str
    frame: B2BFrame | B2CFrame
    entity_ids: np.ndarray  # lead_id or customer_id per entity index
    entity_created: np.ndarray
    account_ids: np.ndarray | None  # B2B: account_id per account index
    outcomes: pd.DataFrame
    stage_events: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # (lead idx, ts, rank) for hybrid
    drops: DropReport = field(default_factory=DropReport)
    vocab: dict[str, np.ndarray] = field(default_factory=dict)  # code → name: topic, category, session
    event_ids: pd.Series | None = None  # event_id per ev_pos
    notes: dict[str, int | float | str] = field(
        default_factory=dict
    )  # e.g. how leads were matched to accounts


def _arrow(values: pd.Series | pd.Index) -> pa.Array:
    """A string column as one Arrow array, without copying when pandas already holds it in Arrow (pandas 3's
    ``str``); string and large string are both kept as they are."""
    arr = pa.array(values.array if isinstance(values, pd.Series) else values, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    return arr.cast(pa.large_string())


def _codes(values: pd.Series, categories: pd.Index | pd.Series) -> np.ndarray:
    """Position of each value in ``categories`` (-1 when absent or missing), by Arrow's hash kernel."""
    arr = _arrow(values)
    idx = pc.index_in(arr, value_set=_arrow(categories).cast(arr.type))
    return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _duplicated(values: pd.Series) -> np.ndarray:
    """True for every repeat of an earlier value. Ids are hashed to 64 bits and sorted (a hash table of millions
    of distinct strings is the slow part of any exact method); only rows whose hash repeats, usually none, are
    compared as strings, so the answer is exact."""
    import polars as pl

    s = pl.Series(_arrow(values))
    h = s.hash(seed=0).to_numpy()
    sorted_h = np.sort(h)
    repeated = sorted_h[1:][sorted_h[1:] == sorted_h[:-1]]
    out = np.zeros(len(h), dtype=bool)
    if len(repeated) == 0:
        return out
    rows = np.flatnonzero(np.isin(h, repeated))
    out[rows] = ~s.gather(rows).is_first_distinct().to_numpy()
    return out


def _vocabulary(values: pd.Series) -> pd.Index:
    """Sorted distinct non-missing values."""
    return pd.Index(sorted(pc.unique(_arrow(values)).drop_null().to_pylist()), dtype=object)


def _factorize(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    enc = _arrow(values).dictionary_encode()
    return (
        pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64),
        np.asarray(enc.dictionary.to_pylist(), dtype=object),
    )


def _epoch(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype="datetime64[s]").astype(np.int64)


def _concurrently(*calls: tuple[Any, ...]) -> list[Any]:
    """Independent passes over columns (``(function, *args)`` each) on a thread per core: Arrow's kernels and
    Polars' release the GIL, so the hash passes over millions of ids run side by side."""
    with ThreadPoolExecutor(max(1, min(len(calls), os.cpu_count() or 1))) as pool:
        futures = [pool.submit(f, *args) for f, *args in calls]
        return [f.result() for f in futures]


def _lookup(values: pd.Series, mapping: dict[str, Any], missing: Any, dtype: Any) -> np.ndarray:
    """``mapping[value]`` for each value (``missing`` where it is absent or not a key), by one hash pass rather
    than a Python call per value."""
    table = np.append(np.asarray(list(mapping.values()), dtype=dtype), np.asarray([missing], dtype=dtype))
    return table[_codes(values, pd.Index(list(mapping)))]


def _clean_events(
    events: pd.DataFrame,
    entity_col: str,
    known: pd.Index,
    drops: DropReport,
    also: tuple[tuple[str, pd.Index], ...] = (),
) -> tuple[pd.DataFrame, np.ndarray, list[np.ndarray]]:
    """Drop duplicate event ids (keep the first) and events of unknown entities; return the entity codes, and
    the codes of each ``also`` column in its categories, of the events kept (all computed side by side)."""
    dup, codes, *more = _concurrently(
        (_duplicated, events["event_id"]),
        (_codes, events[entity_col], known),
        *((_codes, events[c], cats) for c, cats in also),
    )
    drops.add("duplicate event_id (kept the first)", int(dup.sum()))
    unknown = codes < 0
    if entity_col == "lead_id":  # account-level events have no lead
        unknown &= events["lead_id"].notna().to_numpy()
    unknown &= ~dup
    drops.add(f"events for an unknown {entity_col}", int(unknown.sum()))
    keep = ~dup & ~unknown
    if keep.all():
        return events, codes, more
    return events.loc[keep], codes[keep], [m[keep] for m in more]


def prepare(motion: str, tables: dict[str, pd.DataFrame]) -> Prepared:
    return _prepare_b2c(tables) if motions.get(motion).family == "b2c" else _prepare_b2b(motion, tables)


def _prepare_b2b(motion: str, t: dict[str, pd.DataFrame]) -> Prepared:
    drops = DropReport()
    acc, leads = t["accounts"], t["leads"]
    acc_idx = pd.Index(acc["account_id"])
    lead_idx = pd.Index(leads["lead_id"])
    ev, ev_lead, (ev_acc, ev_type) = _clean_events(
        t["events"], "lead_id", lead_idx, drops, (("account_id", acc_idx), ("type", pd.Index(list(B2B_CODE))))
    )
    bad_acc = ev_acc < 0
    drops.add("events for an unknown account_id", int(bad_acc.sum()))
    if bad_acc.any():
        ok = ~bad_acc
        ev, ev_lead, ev_acc, ev_type = ev.loc[ok], ev_lead[ok], ev_acc[ok], ev_type[ok]
    # An event's account is its lead's account when it has a lead (the CRM is the source of truth).
    lead_account = _codes(leads["account_id"], acc_idx)
    ev_account = np.where(ev_lead >= 0, lead_account[np.maximum(ev_lead, 0)], ev_acc)
    topics = _vocabulary(ev["topic"])
    fr = B2BFrame(
        lead_account=lead_account,
        lead_created=_epoch(leads["created_at"]),
        lead_role=_lookup(leads["buying_role"], ROLE_CODE, -1, np.int64),
        lead_seniority=_lookup(leads["seniority"], SENIORITY_RANK, np.nan, np.float64),
        lead_business=(leads["email_domain_type"] == "business").to_numpy(dtype=np.float64),
        lead_stage=np.zeros(len(leads), dtype=np.int64),
        acc_industry=acc["industry"].to_numpy(dtype=object, na_value=None),
        acc_employees=acc["employee_count"].to_numpy(dtype=np.float64, na_value=np.nan),
        acc_revenue=acc["annual_revenue"].to_numpy(dtype=np.float64, na_value=np.nan),
        acc_region=acc["region"].to_numpy(dtype=object, na_value=None),
        ev_ts=_epoch(ev["ts"]),
        ev_type=ev_type.astype(np.int8),
        ev_lead=ev_lead,
        ev_account=ev_account,
        ev_topic=_codes(ev["topic"], topics),
        ev_pos=np.arange(len(ev), dtype=np.int64),
    )
    out = t["outcomes"]
    o_lead = _codes(out["lead_id"], lead_idx)
    ok = o_lead >= 0
    drops.add("outcomes for an unknown lead_id", int((~ok).sum()))
    stages = (
        o_lead[ok],
        _epoch(out["occurred_at"])[ok],
        _lookup(out["stage"], STAGE_RANK, -1, np.int64)[ok],
    )
    match = leads.attrs.get("account_match")
    return Prepared(
        motion,
        fr,
        lead_idx.to_numpy(dtype=object),
        fr.lead_created,
        acc_idx.to_numpy(dtype=object),
        out,
        stages,
        drops,
        {"topic": topics.to_numpy(dtype=object)},
        ev["event_id"].reset_index(drop=True),
        match.summary() if match is not None else {},
    )


def _prepare_b2c(t: dict[str, pd.DataFrame]) -> Prepared:
    drops = DropReport()
    cust = t["customers"]
    cidx = pd.Index(cust["customer_id"])
    ev, ev_cust, (ev_type,) = _clean_events(
        t["events"], "customer_id", cidx, drops, (("type", pd.Index(list(B2C_CODE))),)
    )
    orders = t["orders"]
    o_c = _codes(orders["customer_id"], cidx)
    drops.add("orders for an unknown customer_id", int((o_c < 0).sum()))
    cats = _vocabulary(ev["category"])
    sess_codes, sess_names = _factorize(ev["session_id"])
    fr = B2CFrame(
        cust_created=_epoch(cust["created_at"]),
        cust_channel=cust["channel"].to_numpy(dtype=object, na_value=None),
        cust_device=cust["device"].to_numpy(dtype=object, na_value=None),
        cust_consent_email=cust["consent_email"].fillna(False).to_numpy(dtype=np.float64),
        cust_consent_sms=cust["consent_sms"].fillna(False).to_numpy(dtype=np.float64),
        ev_ts=_epoch(ev["ts"]),
        ev_type=ev_type.astype(np.int8),
        ev_cust=ev_cust,
        ev_session=sess_codes.astype(np.int64),
        ev_category=_codes(ev["category"], cats),
        ev_price=ev["price"].to_numpy(dtype=np.float64, na_value=np.nan),
        ev_qty=ev["quantity"].to_numpy(dtype=np.float64, na_value=np.nan),
        ev_pos=np.arange(len(ev), dtype=np.int64),
        ord_cust=o_c[o_c >= 0],
        ord_ts=_epoch(orders["ts"])[o_c >= 0],
        ord_amount=orders["amount"].to_numpy(dtype=np.float64)[o_c >= 0],
    )
    vocab = {"category": cats.to_numpy(dtype=object), "session": np.asarray(sess_names, dtype=object)}
    return Prepared(
        "b2c",
        fr,
        cidx.to_numpy(dtype=object),
        fr.cust_created,
        None,
        t["outcomes"],
        None,
        drops,
        vocab,
        ev["event_id"].reset_index(drop=True),
    )
