"""Point in time, shared by historical and online features: the frame as it stood at ``as_of`` — entities that
existed then, their funnel stage then, and the events of the last 90 days up to then."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from features.frames import DAY, B2BFrame, B2CFrame
from features.prepare import Prepared

MAX_WINDOW = 90 * int(DAY)


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
            fr,
            cust_created=fr.cust_created[keep],
            cust_channel=fr.cust_channel[keep],
            cust_device=fr.cust_device[keep],
            cust_consent_email=fr.cust_consent_email[keep],
            cust_consent_sms=fr.cust_consent_sms[keep],
            ev_ts=fr.ev_ts[win],
            ev_type=fr.ev_type[win],
            ev_cust=remap[fr.ev_cust[win]],
            ev_session=fr.ev_session[win],
            ev_category=fr.ev_category[win],
            ev_price=fr.ev_price[win],
            ev_qty=fr.ev_qty[win],
            ev_pos=fr.ev_pos[win],
            ord_cust=remap[fr.ord_cust[o]],
            ord_ts=fr.ord_ts[o],
            ord_amount=fr.ord_amount[o],
        ), keep
    has_lead = fr.ev_lead >= 0
    win &= ~has_lead | (remap[np.maximum(fr.ev_lead, 0)] >= 0)
    ev_lead = fr.ev_lead[win]
    return replace(
        fr,
        lead_account=fr.lead_account[keep],
        lead_created=fr.lead_created[keep],
        lead_role=fr.lead_role[keep],
        lead_seniority=fr.lead_seniority[keep],
        lead_business=fr.lead_business[keep],
        lead_stage=fr.lead_stage[keep],
        ev_ts=fr.ev_ts[win],
        ev_type=fr.ev_type[win],
        ev_lead=np.where(ev_lead >= 0, remap[np.maximum(ev_lead, 0)], -1),
        ev_account=fr.ev_account[win],
        ev_topic=fr.ev_topic[win],
        ev_pos=fr.ev_pos[win],
    ), keep
