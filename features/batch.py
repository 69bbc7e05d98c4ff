"""Point-in-time batch features and training sets from canonical tables.

``prepare`` turns validated tables into arrays once (dedupes event ids, drops events of unknown entities,
counting both); ``features_as_of`` computes a feature frame for every entity that exists at ``as_of``;
``training_set`` stacks snapshots into (entity, as-of, label) rows with labels from the horizon after as-of.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.compute import B2B_CODE, B2C_CODE, DAY, ROLE_CODE, STAGE_RANK, B2BFrame, B2CFrame, compute
from features.definitions import FeatureSet, feature_set
from leadscore.config import MotionConfig
from leadscore.schema import SENIORITIES, DropReport

MAX_WINDOW = 90 * int(DAY)
SENIORITY_RANK = {s: float(i) for i, s in enumerate(SENIORITIES)}


@dataclass
class Prepared:
    """A motion's tables as arrays, ready for any number of as-of computations."""

    motion: str
    frame: B2BFrame | B2CFrame
    entity_ids: np.ndarray           # lead_id or customer_id per entity index
    entity_created: np.ndarray
    account_ids: np.ndarray | None   # B2B: account_id per account index
    outcomes: pd.DataFrame
    stage_events: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # (lead idx, ts, rank) for hybrid
    drops: DropReport = field(default_factory=DropReport)
    vocab: dict[str, np.ndarray] = field(default_factory=dict)  # code → name: topic, category, session
    event_ids: pd.Series | None = None                          # event_id per ev_pos


def _arrow(values: pd.Series | pd.Index) -> pa.Array:
    arr = pa.array(values, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.string()) if not pa.types.is_string(arr.type) else arr


def _codes(values: pd.Series, categories: pd.Index | pd.Series) -> np.ndarray:
    """Position of each value in ``categories`` (-1 when absent or missing), by Arrow's hash kernel."""
    idx = pc.index_in(_arrow(values), value_set=_arrow(categories))
    return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _duplicated(values: pd.Series) -> np.ndarray:
    """True for every repeat of an earlier value. Polars hashes 20M strings 3–4× faster than Arrow's
    dictionary encoding and ~4× faster than pandas here; this is the hottest step of the batch path."""
    import polars as pl
    return ~pl.from_arrow(_arrow(values)).is_first_distinct().to_numpy()


def _vocabulary(values: pd.Series) -> pd.Index:
    """Sorted distinct non-missing values."""
    return pd.Index(sorted(pc.unique(_arrow(values)).drop_null().to_pylist()), dtype=object)


def _factorize(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    enc = _arrow(values).dictionary_encode()
    return (pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64),
            np.asarray(enc.dictionary.to_pylist(), dtype=object))


def _epoch(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype="datetime64[s]").astype(np.int64)


def _clean_events(events: pd.DataFrame, entity_col: str, known: pd.Index,
                  drops: DropReport) -> tuple[pd.DataFrame, np.ndarray]:
    """Drop duplicate event ids (keep the first) and events of unknown entities; return codes too."""
    dup = _duplicated(events["event_id"])
    drops.add("duplicate event_id (kept the first)", int(dup.sum()))
    codes = _codes(events[entity_col], known)
    unknown = codes < 0
    if entity_col == "lead_id":  # account-level events have no lead
        unknown &= events["lead_id"].notna().to_numpy()
    unknown &= ~dup
    drops.add(f"events for an unknown {entity_col}", int(unknown.sum()))
    keep = ~dup & ~unknown
    if keep.all():
        return events, codes
    return events.loc[keep], codes[keep]


def prepare(motion: str, tables: dict[str, pd.DataFrame]) -> Prepared:
    return _prepare_b2c(tables) if motion == "b2c" else _prepare_b2b(motion, tables)


def _prepare_b2b(motion: str, t: dict[str, pd.DataFrame]) -> Prepared:
    drops = DropReport()
    acc, leads = t["accounts"], t["leads"]
    acc_idx = pd.Index(acc["account_id"])
    lead_idx = pd.Index(leads["lead_id"])
    ev, ev_lead = _clean_events(t["events"], "lead_id", lead_idx, drops)
    ev_acc = _codes(ev["account_id"], acc_idx)
    bad_acc = ev_acc < 0
    drops.add("events for an unknown account_id", int(bad_acc.sum()))
    if bad_acc.any():
        ev, ev_lead, ev_acc = ev.loc[~bad_acc], ev_lead[~bad_acc], ev_acc[~bad_acc]
    # An event's account is its lead's account when it has a lead (the CRM is the source of truth).
    lead_account = _codes(leads["account_id"], acc_idx)
    ev_account = np.where(ev_lead >= 0, lead_account[np.maximum(ev_lead, 0)], ev_acc)
    topics = _vocabulary(ev["topic"])
    fr = B2BFrame(
        lead_account=lead_account,
        lead_created=_epoch(leads["created_at"]),
        lead_role=leads["buying_role"].map(ROLE_CODE).to_numpy(dtype=np.int64),
        lead_seniority=leads["seniority"].map(SENIORITY_RANK).to_numpy(dtype=np.float64, na_value=np.nan),
        lead_business=(leads["email_domain_type"] == "business").to_numpy(dtype=np.float64),
        lead_stage=np.zeros(len(leads), dtype=np.int64),
        acc_industry=acc["industry"].to_numpy(dtype=object, na_value=None),
        acc_employees=acc["employee_count"].to_numpy(dtype=np.float64, na_value=np.nan),
        acc_revenue=acc["annual_revenue"].to_numpy(dtype=np.float64, na_value=np.nan),
        acc_region=acc["region"].to_numpy(dtype=object, na_value=None),
        ev_ts=_epoch(ev["ts"]),
        ev_type=_codes(ev["type"], pd.Index(list(B2B_CODE))).astype(np.int8),
        ev_lead=ev_lead, ev_account=ev_account,
        ev_topic=_codes(ev["topic"], topics), ev_pos=np.arange(len(ev), dtype=np.int64),
    )
    out = t["outcomes"]
    o_lead = _codes(out["lead_id"], lead_idx)
    ok = o_lead >= 0
    drops.add("outcomes for an unknown lead_id", int((~ok).sum()))
    stages = (o_lead[ok], _epoch(out["occurred_at"])[ok], out["stage"].map(STAGE_RANK).to_numpy(dtype=np.int64)[ok])
    return Prepared(motion, fr, lead_idx.to_numpy(dtype=object), fr.lead_created, acc_idx.to_numpy(dtype=object),
                    out, stages, drops, {"topic": topics.to_numpy(dtype=object)}, ev["event_id"].reset_index(drop=True))


def _prepare_b2c(t: dict[str, pd.DataFrame]) -> Prepared:
    drops = DropReport()
    cust = t["customers"]
    cidx = pd.Index(cust["customer_id"])
    ev, ev_cust = _clean_events(t["events"], "customer_id", cidx, drops)
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
        ev_ts=_epoch(ev["ts"]), ev_type=_codes(ev["type"], pd.Index(list(B2C_CODE))).astype(np.int8),
        ev_cust=ev_cust,
        ev_session=sess_codes.astype(np.int64),
        ev_category=_codes(ev["category"], cats),
        ev_price=ev["price"].to_numpy(dtype=np.float64, na_value=np.nan),
        ev_qty=ev["quantity"].to_numpy(dtype=np.float64, na_value=np.nan),
        ev_pos=np.arange(len(ev), dtype=np.int64),
        ord_cust=o_c[o_c >= 0], ord_ts=_epoch(orders["ts"])[o_c >= 0],
        ord_amount=orders["amount"].to_numpy(dtype=np.float64)[o_c >= 0],
    )
    vocab = {"category": cats.to_numpy(dtype=object), "session": np.asarray(sess_names, dtype=object)}
    return Prepared("b2c", fr, cidx.to_numpy(dtype=object), fr.cust_created, None, t["outcomes"], None, drops, vocab,
                    ev["event_id"].reset_index(drop=True))


def stage_as_of(p: Prepared, as_of: int) -> np.ndarray:
    """Highest funnel stage rank each lead had reached at ``as_of`` (0 = none)."""
    rank = np.zeros(len(p.entity_ids), dtype=np.int64)
    if p.stage_events is not None:
        lead, ts, r = p.stage_events
        m = ts <= as_of
        np.maximum.at(rank, lead[m], r[m])
    return rank


def frame_as_of(p: Prepared, as_of: int) -> tuple[B2BFrame | B2CFrame, np.ndarray]:
    """The prepared frame as it stood at ``as_of`` (see ``restrict``) and the entity indices it keeps."""
    fr = p.frame
    if isinstance(fr, B2BFrame):
        fr = replace(fr, lead_stage=stage_as_of(p, as_of))
    return restrict(fr, as_of)


def restrict(fr: B2BFrame | B2CFrame, as_of: int) -> tuple[B2BFrame | B2CFrame, np.ndarray]:
    """Entities that exist at ``as_of`` and events of the last 90 days up to ``as_of``.

    Shared by batch and online. Events of an entity that does not exist yet are not attributable at
    ``as_of`` and are left out. Returns the frame and the original entity indices it keeps.
    """
    created = fr.cust_created if isinstance(fr, B2CFrame) else fr.lead_created
    keep = np.flatnonzero(created <= as_of)
    remap = np.full(len(created), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    win = (fr.ev_ts <= as_of) & (fr.ev_ts > as_of - MAX_WINDOW)
    if isinstance(fr, B2CFrame):
        win &= remap[fr.ev_cust] >= 0
        o = (fr.ord_ts <= as_of) & (remap[fr.ord_cust] >= 0)
        return replace(
            fr, cust_created=fr.cust_created[keep], cust_channel=fr.cust_channel[keep],
            cust_device=fr.cust_device[keep], cust_consent_email=fr.cust_consent_email[keep],
            cust_consent_sms=fr.cust_consent_sms[keep], ev_ts=fr.ev_ts[win], ev_type=fr.ev_type[win],
            ev_cust=remap[fr.ev_cust[win]], ev_session=fr.ev_session[win], ev_category=fr.ev_category[win],
            ev_price=fr.ev_price[win], ev_qty=fr.ev_qty[win], ev_pos=fr.ev_pos[win], ord_cust=remap[fr.ord_cust[o]],
            ord_ts=fr.ord_ts[o], ord_amount=fr.ord_amount[o]), keep
    has_lead = fr.ev_lead >= 0
    win &= ~has_lead | (remap[np.maximum(fr.ev_lead, 0)] >= 0)
    ev_lead = fr.ev_lead[win]
    return replace(
        fr, lead_account=fr.lead_account[keep], lead_created=fr.lead_created[keep], lead_role=fr.lead_role[keep],
        lead_seniority=fr.lead_seniority[keep], lead_business=fr.lead_business[keep],
        lead_stage=fr.lead_stage[keep], ev_ts=fr.ev_ts[win], ev_type=fr.ev_type[win],
        ev_lead=np.where(ev_lead >= 0, remap[np.maximum(ev_lead, 0)], -1), ev_account=fr.ev_account[win],
        ev_topic=fr.ev_topic[win], ev_pos=fr.ev_pos[win]), keep


def to_timestamp(as_of: str | pd.Timestamp | int) -> int:
    if isinstance(as_of, int | np.integer):
        return int(as_of)
    ts = pd.Timestamp(as_of)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.timestamp())  # naive timestamps are UTC


def features_as_of(p: Prepared, as_of: str | pd.Timestamp | int, conf: MotionConfig,
                   fs: FeatureSet | None = None) -> pd.DataFrame:
    """One row per entity existing at ``as_of``: ids, ``as_of`` and every feature of the set."""
    fs = fs or feature_set(conf.feature_set)
    t = to_timestamp(as_of)
    fr, keep = frame_as_of(p, t)
    values = compute(fr, t, conf, fs)
    id_col = "customer_id" if p.motion == "b2c" else "lead_id"
    cols: dict[str, object] = {id_col: p.entity_ids[keep]}
    if p.account_ids is not None:
        cols["account_id"] = p.account_ids[p.frame.lead_account[keep]]
    cols["as_of"] = np.full(len(keep), t, dtype="int64").astype("datetime64[s]")
    cols |= values
    return pd.DataFrame(cols)


def latest_time(p: Prepared) -> int:
    return int(p.frame.ev_ts.max()) if len(p.frame.ev_ts) else int(p.entity_created.max())


def snapshot_times(p: Prepared, conf: MotionConfig) -> list[int]:
    """As-of dates whose whole label horizon is observed, newest first, after a 30-day warm-up."""
    end = latest_time(p) - conf.horizon_days * int(DAY)
    start = int(p.frame.ev_ts.min()) + 30 * int(DAY) if len(p.frame.ev_ts) else end
    times = [end - k * conf.snapshots.every_days * int(DAY) for k in range(conf.snapshots.count)]
    times = [t for t in times if t >= start]
    if not times:
        raise ValueError(f"the data spans too little time for a {conf.horizon_days}-day horizon and a 30-day warm-up")
    return times


def labels(p: Prepared, rows: pd.DataFrame, conf: MotionConfig) -> tuple[np.ndarray, np.ndarray]:
    """Label and realised value per (entity, as_of) row from outcomes in (as_of, as_of + horizon]."""
    o = p.outcomes
    id_col = "customer_id" if p.motion == "b2c" else "lead_id"
    if p.motion == "b2c":
        pos = o.loc[o["purchased"].fillna(False).astype(bool), [id_col, "occurred_at", "value"]]
    else:
        pos = o.loc[o["stage"] == conf.label.stage, [id_col, "occurred_at", "value"]]
    m = rows[[id_col, "as_of"]].reset_index().merge(pos, on=id_col, how="inner")
    h = pd.Timedelta(days=conf.horizon_days)
    m = m[(m["occurred_at"] > m["as_of"]) & (m["occurred_at"] <= m["as_of"] + h)]
    agg = m.groupby("index").agg(value=("value", "sum"))
    y = np.zeros(len(rows), dtype=np.int8)
    v = np.zeros(len(rows))
    y[agg.index.to_numpy()] = 1
    v[agg.index.to_numpy()] = agg["value"].fillna(0).to_numpy()
    return y, v


def open_at(p: Prepared, as_of: int) -> np.ndarray:
    """B2B: leads not yet won or lost at ``as_of`` (closed deals are not scored)."""
    if p.stage_events is None:
        return np.ones(len(p.entity_ids), dtype=bool)
    return stage_as_of(p, as_of) < STAGE_RANK["won"]


def _snapshot(p: Prepared, t: int, conf: MotionConfig, fs: FeatureSet | None) -> pd.DataFrame:
    rows = features_as_of(p, t, conf, fs)
    if p.motion != "b2c":
        still_open = open_at(p, t)[p.entity_created <= t]
        rows = rows.loc[still_open].reset_index(drop=True)
    y, v = labels(p, rows, conf)
    return rows.assign(label=y, label_value=v)


def training_set(p: Prepared, conf: MotionConfig, fs: FeatureSet | None = None,
                 scheduler: str | None = None) -> pd.DataFrame:
    """Stacked snapshots of (entity, as_of, features, label, label_value), oldest first.

    Snapshots are independent: with a Dask scheduler (``LEADSCORE_DASK_SCHEDULER`` or ``scheduler``) each one
    is a task on the cluster, the prepared arrays broadcast once; otherwise they run in-process.
    """
    from leadscore.settings import Settings
    times = sorted(snapshot_times(p, conf))
    scheduler = scheduler or Settings.load().dask_scheduler
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise ValueError("LEADSCORE_DASK_SCHEDULER is set but dask is not installed: pip install 'leadscore[dask]'") from None
        with Client(scheduler) as client:
            shared = client.scatter(p, broadcast=True)
            futures = [client.submit(_snapshot, shared, t, conf, fs, pure=False) for t in times]
            frames = client.gather(futures)
    else:
        frames = [_snapshot(p, t, conf, fs) for t in times]
    return pd.concat(frames, ignore_index=True)
