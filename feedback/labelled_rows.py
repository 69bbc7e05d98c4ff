"""Labelled rows from the loop: score-log rows joined to outcomes that happened after scoring.

The features are exactly what the model saw (stored with the score), the label comes only from outcomes in
(as_of, as_of + horizon], and a row counts only once its horizon has elapsed — leakage-free by construction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore import motions, score_rows
from leadscore.config import MotionConfig
from leadscore.store import Store


def outcomes(store: Store, motion: str) -> pd.DataFrame:
    df = pd.DataFrame(
        store.query(
            "SELECT entity_id, stage, purchased, value, occurred_at, contacted_at FROM outcomes "
            "WHERE motion = ?",
            (motions.get(motion).family,),
        )
    )
    if df.empty:
        return pd.DataFrame(
            columns=["entity_id", "stage", "purchased", "value", "occurred_at", "contacted_at"]
        )
    df["purchased"] = df["purchased"].eq(1)  # stored as an integer
    df["occurred_at"] = pd.to_datetime(df["occurred_at"])
    df["contacted_at"] = pd.to_datetime(df["contacted_at"])
    return df


def scores(store: Store, motion: str, since: str | None = None) -> pd.DataFrame:
    df = pd.DataFrame(score_rows.read(store, motion))
    if df.empty:
        return df
    df["as_of"] = pd.to_datetime(df["as_of"], format="mixed", utc=True).dt.tz_localize(None)
    if since:
        df = df[df["as_of"] >= pd.Timestamp(since)].reset_index(drop=True)
    df["at"] = pd.to_datetime(df["at"], format="mixed", utc=True).dt.tz_localize(None)
    # The same lead scored twice for the same moment (e.g. a retried webhook) counts once.
    return df.drop_duplicates(["entity_id", "as_of", "version"], keep="last").reset_index(drop=True)


def labelled(
    store: Store, conf: MotionConfig, since: str | None = None, horizon_end: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Score-log rows with ``label``, ``label_value`` and ``contacted_at``; only matured rows.

    A row is mature once ``as_of + horizon`` is not later than ``horizon_end`` (default: the latest outcome
    seen, i.e. how far the outcome feed has got).
    """
    s = scores(store, conf.motion, since)
    o = outcomes(store, conf.motion)
    if s.empty:
        return s
    h = pd.Timedelta(days=conf.horizon_days)
    end = horizon_end if horizon_end is not None else (o["occurred_at"].max() if len(o) else pd.Timestamp.min)
    s = s[s["as_of"] + h <= end].reset_index(drop=True)
    pos = o.loc[motions.positive_outcomes(o, conf.motion, conf.label.stage)]
    y, v = motions.labels_within(s, pos, "entity_id", conf.horizon_days)
    s["label"], s["label_value"] = y.astype(np.int64), v
    contact = o.dropna(subset=["contacted_at"]).groupby("entity_id")["contacted_at"].min()
    s["contacted_at"] = s["entity_id"].map(contact) if len(contact) else pd.NaT
    return s


def feature_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The features the model saw, one column each, plus ``as_of`` (for time splits)."""
    feats = pd.DataFrame(list(rows["features"]), index=rows.index)
    return feats.assign(as_of=rows["as_of"].to_numpy())
