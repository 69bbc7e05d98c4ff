"""Historical (point-in-time) features and training sets from prepared canonical tables.

``features_as_of`` computes a feature frame for every entity that exists at ``as_of``; ``training_set`` stacks
snapshots into (entity, as-of, label) rows, labelled by the motion's label rule over the horizon after as-of.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.compute import compute
from features.definitions import FeatureSet, feature_set
from features.frames import DAY, STAGE_RANK, B2BFrame
from features.point_in_time import frame_as_of, stage_as_of
from features.prepare import Prepared
from leadscore import motions
from leadscore.config import MotionConfig
from leadscore.errors import UserError
from leadscore.times import epoch_seconds


def features_as_of(
    p: Prepared, as_of: str | pd.Timestamp | int, conf: MotionConfig, fs: FeatureSet | None = None
) -> pd.DataFrame:
    """One row per entity existing at ``as_of``: ids, ``as_of`` and every feature of the set."""
    fs = fs or feature_set(conf.feature_set)
    t = epoch_seconds(as_of)
    fr, keep = frame_as_of(p, t)
    values = compute(fr, t, conf, fs)
    cols: dict[str, object] = {motions.get(p.motion).id_column: p.entity_ids[keep]}
    if p.account_ids is not None and isinstance(p.frame, B2BFrame):
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
        raise UserError(
            f"the data spans too little time for a {conf.horizon_days}-day horizon and a 30-day warm-up"
        )
    return times


def labels(p: Prepared, rows: pd.DataFrame, conf: MotionConfig) -> tuple[np.ndarray, np.ndarray]:
    """Label and realised value per (entity, as_of) row: the motion's label rule over (as_of, as_of + horizon]."""
    o = p.outcomes
    pos = o.loc[motions.positive_outcomes(o, p.motion, conf.label.stage)]
    return motions.labels_within(rows, pos, motions.get(p.motion).id_column, conf.horizon_days)


def open_at(p: Prepared, as_of: int) -> np.ndarray:
    """B2B: leads not yet won or lost at ``as_of`` (closed deals are not scored)."""
    if p.stage_events is None:
        return np.ones(len(p.entity_ids), dtype=bool)
    return stage_as_of(p, as_of) < STAGE_RANK["won"]


def _snapshot(p: Prepared, t: int, conf: MotionConfig, fs: FeatureSet | None) -> pd.DataFrame:
    rows = features_as_of(p, t, conf, fs)
    if motions.get(p.motion).family == "b2b":
        still_open = open_at(p, t)[p.entity_created <= t]
        rows = rows.loc[still_open].reset_index(drop=True)
    y, v = labels(p, rows, conf)
    return rows.assign(label=y, label_value=v)


def training_set(p: Prepared, conf: MotionConfig, fs: FeatureSet | None = None) -> pd.DataFrame:
    """Stacked snapshots of (entity, as_of, features, label, label_value), oldest first (in-process; a Dask
    cluster computes the same per partition of entities: ``features.partitioned``)."""
    times = sorted(snapshot_times(p, conf))
    return pd.concat([_snapshot(p, t, conf, fs) for t in times], ignore_index=True)
