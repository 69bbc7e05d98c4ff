"""Feature computation over plain numpy arrays — the one implementation batch and online share.

Batch builds a frame for all entities of a data set; online builds the same frame for one lead (its account
context from the online store plus the request's events) and calls the same functions.  Every function sees
only events with ``ts <= as_of`` (point-in-time), so appending later events changes nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.definitions import FeatureSet
from features.frames import (
    B2B_CODE,
    B2C_CODE,
    BROWSE_LUT,
    CONTENT_LUT,
    DAY,
    DEMO_LUT,
    HI_LUT,
    INTENT_LUT,
    NONE,
    ROLE_CODE,
    STAGE_NAMES,
    STAGE_RANK,
    B2BFrame,
    B2CFrame,
)
from leadscore.config import MotionConfig
from leadscore.motions import BUYING_ROLES

# ---------------------------------------------------------------- primitives


def _count(idx: np.ndarray, mask: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    w = None if weights is None else weights[mask]
    return np.bincount(idx[mask], weights=w, minlength=n).astype(np.float64)[:n]


def _last(idx: np.ndarray, ts: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Latest ts per entity among masked rows; -1 where none."""
    out = np.full(n, -1, dtype=np.int64)
    np.maximum.at(out, idx[mask], ts[mask])
    return out


def _distinct(idx: np.ndarray, values: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Distinct masked values (codes >= 0) per entity. The key space is sized to the largest code present: a
    batch numbers topics and categories across all its entities, so there is no fixed bound."""
    v = values[mask].astype(np.int64)
    span = int(v.max()) + 1 if v.size else 1
    keys = np.unique(idx[mask].astype(np.int64) * span + v)
    return np.bincount(keys // span, minlength=n).astype(np.float64)[:n]


def _days_since(last: np.ndarray, as_of: int) -> np.ndarray:
    return np.where(last >= 0, (as_of - last) / DAY, np.nan)


def _surge(c7: np.ndarray, c35: np.ndarray) -> np.ndarray:
    """Last 7 days against the weekly rate of the prior 28, smoothed by one so it stays finite."""
    return (c7 + 1.0) / ((c35 - c7) / 4.0 + 1.0)


# ---------------------------------------------------------------- B2B


def _known_in(values: np.ndarray, allowed: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which values are known (not None or NaN) and which are in ``allowed``: an account per value, one or a few
    online (a loop), hundreds of thousands in a batch (pandas' hash kernels)."""
    if len(values) < 1000:
        ok = set(allowed)
        return (
            np.fromiter((v is not None and v == v for v in values), bool, len(values)),
            np.fromiter((v in ok for v in values), bool, len(values)),
        )
    s = pd.Series(values, dtype=object, copy=False)
    return s.notna().to_numpy(), s.isin(allowed).to_numpy()


def b2b_fit(fr: B2BFrame, conf: MotionConfig) -> dict[str, np.ndarray]:
    """ICP match per account (then gathered to its leads) plus the lead's own email, seniority and role."""
    icp = conf.icp
    ind_known, ind_ok = _known_in(fr.acc_industry, icp.industries)
    reg_known, reg_ok = _known_in(fr.acc_region, icp.regions)
    emp, rev = fr.acc_employees, fr.acc_revenue
    acc = np.vstack(
        [
            np.where(ind_known, ind_ok, np.nan),
            np.where(np.isnan(emp), np.nan, (emp >= icp.employee_band[0]) & (emp <= icp.employee_band[1])),
            np.where(np.isnan(rev), np.nan, (rev >= icp.revenue_band[0]) & (rev <= icp.revenue_band[1])),
            np.where(reg_known, reg_ok, np.nan),
        ]
    )
    known_n = (~np.isnan(acc)).sum(0)
    score = np.where(known_n > 0, np.nansum(acc, 0) / np.maximum(known_n, 1), np.nan)
    a = fr.lead_account
    return {
        "fit_industry_match": acc[0][a],
        "fit_size_match": acc[1][a],
        "fit_revenue_match": acc[2][a],
        "fit_region_match": acc[3][a],
        "fit_icp_score": score[a],
        "fit_log_employees": np.log10(np.maximum(emp, 1.0))[a],
        "fit_business_email": fr.lead_business.astype(np.float64),
        "fit_seniority": fr.lead_seniority.astype(np.float64),
        "fit_buying_role": np.asarray(BUYING_ROLES, dtype=object)[fr.lead_role],
        "fit_industry": np.where(ind_known, fr.acc_industry, NONE)[a],
    }


def _window_masks(ts: np.ndarray, as_of: int) -> dict[int, np.ndarray]:
    age = as_of - ts
    valid = age >= 0
    return {w: valid & (age < w * DAY) for w in (1, 7, 30, 35, 90)}


def b2b_intent(
    fr: B2BFrame, as_of: int, conf: MotionConfig, lead_level_only: bool = False
) -> dict[str, np.ndarray]:
    w = _window_masks(fr.ev_ts, as_of)
    hi = HI_LUT[fr.ev_type]
    on_lead = fr.ev_lead >= 0
    decay = np.exp2(-(as_of - fr.ev_ts) / (conf.intent_half_life_days * DAY))
    nl, na = fr.n_leads, fr.n_accounts
    lead = np.where(on_lead, fr.ev_lead, 0)
    hl = hi & on_lead
    out = {
        "intent_lead_hi_7d": _count(lead, hl & w[7], nl),
        "intent_lead_hi_30d": _count(lead, hl & w[30], nl),
        "intent_lead_hi_90d": _count(lead, hl & w[90], nl),
        "intent_lead_pricing_7d": _count(lead, on_lead & w[7] & (fr.ev_type == B2B_CODE["pricing_page"]), nl),
        "intent_lead_demo_30d": _count(lead, on_lead & w[30] & DEMO_LUT[fr.ev_type], nl),
        "intent_lead_decayed": _count(lead, hl & w[90], nl, decay),
    }
    out["intent_lead_surge"] = _surge(out["intent_lead_hi_7d"], _count(lead, hl & w[35], nl))
    out["intent_lead_days_since_hi"] = _days_since(_last(lead, fr.ev_ts, hl & w[90], nl), as_of)
    if lead_level_only:
        return out
    acc = fr.ev_account
    a = fr.lead_account
    c7 = _count(acc, hi & w[7], na)
    acct = {
        "intent_acct_hi_30d": _count(acc, hi & w[30], na),
        "intent_acct_decayed": _count(acc, hi & w[90], na, decay),
        "intent_acct_surge": _surge(c7, _count(acc, hi & w[35], na)),
        "intent_acct_days_since_hi": _days_since(_last(acc, fr.ev_ts, hi & w[90], na), as_of),
        "intent_acct_topics_90d": _distinct(acc, fr.ev_topic, w[90] & (fr.ev_topic >= 0), na),
    }
    out.update({k: v[a] for k, v in acct.items()})
    return out


def b2b_engagement(fr: B2BFrame, as_of: int, conf: MotionConfig) -> dict[str, np.ndarray]:
    w = _window_masks(fr.ev_ts, as_of)
    nl, na, a = fr.n_leads, fr.n_accounts, fr.lead_account
    on_lead = fr.ev_lead >= 0
    lead = np.where(on_lead, fr.ev_lead, 0)
    lead_ev = _count(lead, on_lead & w[30] & (fr.ev_type != B2B_CODE["email_open"]), nl)
    engaged = lead_ev > 0
    unknown = ROLE_CODE["unknown"]
    contacts = _count(a, engaged, na)
    roles = _distinct(a, fr.lead_role, engaged & (fr.lead_role != unknown), na)
    has_role = {r: _count(a, engaged & (fr.lead_role == ROLE_CODE[r]), na) > 0 for r in BUYING_ROLES}
    required = [r for r in conf.required_roles if r in ROLE_CODE]
    coverage = np.mean([has_role[r] for r in required], 0) if required else np.zeros(na)
    sen = np.where(engaged & ~np.isnan(fr.lead_seniority), fr.lead_seniority, -1.0)
    max_sen = np.full(na, -1.0)
    np.maximum.at(max_sen, a, sen)
    acct_ev = _count(a, np.ones(nl, bool), na, lead_ev)
    meetings = _count(fr.ev_account, w[90] & (fr.ev_type == B2B_CODE["meeting_booked"]), na)
    return {
        "engagement_contacts_30d": contacts[a],
        "engagement_roles_30d": roles[a],
        "engagement_economic_buyer": has_role["economic_buyer"][a].astype(np.float64),
        "engagement_champion": has_role["champion"][a].astype(np.float64),
        "engagement_role_coverage": np.asarray(coverage, dtype=np.float64)[a],
        "engagement_max_seniority": np.where(max_sen >= 0, max_sen, np.nan)[a],
        "engagement_lead_share": np.where(acct_ev[a] > 0, lead_ev / np.maximum(acct_ev[a], 1), 0.0),
        "engagement_lead_events_30d": lead_ev,
        "engagement_meetings_90d": meetings[a],
    }


def hybrid_behavior(fr: B2BFrame, as_of: int) -> dict[str, np.ndarray]:
    w = _window_masks(fr.ev_ts, as_of)
    nl = fr.n_leads
    on_lead = fr.ev_lead >= 0
    lead = np.where(on_lead, fr.ev_lead, 0)
    day = (fr.ev_ts // int(DAY)) % 64
    content = CONTENT_LUT[fr.ev_type]
    return {
        "behavior_recency_days": _days_since(_last(lead, fr.ev_ts, on_lead & w[90], nl), as_of),
        "behavior_events_7d": _count(lead, on_lead & w[7], nl),
        "behavior_events_30d": _count(lead, on_lead & w[30], nl),
        "behavior_active_days_30d": _distinct(lead, day, on_lead & w[30], nl),
        "behavior_content_30d": _count(lead, on_lead & w[30] & content, nl),
    }


def hybrid_lifecycle(fr: B2BFrame, as_of: int) -> dict[str, np.ndarray]:
    stage = np.asarray(STAGE_NAMES, dtype=object)[np.clip(fr.lead_stage, 0, 4)]
    return {"lifecycle_stage": stage, "lifecycle_tenure_days": (as_of - fr.lead_created) / DAY}


def compute_b2b(fr: B2BFrame, as_of: int, conf: MotionConfig, fs: FeatureSet) -> dict[str, np.ndarray]:
    """All features of a B2B (or hybrid) feature set for every lead in the frame, as of ``as_of``."""
    if fs.motion == "hybrid":
        out = hybrid_behavior(fr, as_of) | b2b_intent(fr, as_of, conf, lead_level_only=True)
        out |= hybrid_lifecycle(fr, as_of)
        rigor = b2b_fit(fr, conf) | b2b_engagement(fr, as_of, conf)
        gate = STAGE_RANK[conf.gate_stage] if conf.gate_stage else 0
        early = fr.lead_stage < gate
        for k, v in rigor.items():  # B2B rigor counts once the lead reaches the gate stage
            out[k] = np.where(early, NONE, v) if v.dtype == object else np.where(early, np.nan, v)
    else:
        out = b2b_fit(fr, conf) | b2b_intent(fr, as_of, conf) | b2b_engagement(fr, as_of, conf)
    return _checked(out, fs)


# ---------------------------------------------------------------- B2C


def compute_b2c(fr: B2CFrame, as_of: int, conf: MotionConfig, fs: FeatureSet) -> dict[str, np.ndarray]:
    """All features of the B2C feature set for every customer in the frame, as of ``as_of``."""
    n, c, t, k = fr.n, fr.ev_cust, fr.ev_ts, fr.ev_type
    w = _window_masks(t, as_of)
    code = B2C_CODE
    # Sessions: first/last event per session (as of), then windows on the session's last event.
    sess_n = int(fr.ev_session.max()) + 1 if len(fr.ev_session) else 0
    valid = w[90]
    s_last = np.full(sess_n, -1, dtype=np.int64)
    np.maximum.at(s_last, fr.ev_session[valid], t[valid])
    s_first = np.full(sess_n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(s_first, fr.ev_session[valid], t[valid])
    s_cust = np.zeros(sess_n, dtype=np.int64)
    s_cust[fr.ev_session[valid]] = c[valid]
    s_ok = s_last >= 0
    s_age = as_of - s_last

    def sessions(days: float, older: bool = False) -> np.ndarray:
        m = s_ok & ((s_age >= days * DAY) if older else (s_age < days * DAY))
        return _count(s_cust, m, n)

    s30 = s_ok & (s_age < 30 * DAY)
    minutes = _count(s_cust, s30, n, np.where(s_ok, (s_last - np.minimum(s_first, s_last)) / 60.0, 0.0))
    pv = k == code["product_view"]
    browse = BROWSE_LUT[k] & (fr.ev_category >= 0)
    ord_ok = fr.ord_ts <= as_of
    orders = _count(fr.ord_cust, ord_ok, n)
    monetary = _count(fr.ord_cust, ord_ok, n, fr.ord_amount)
    since_order = _days_since(_last(fr.ord_cust, fr.ord_ts, ord_ok, n), as_of)
    out = {
        "behavior_recency_days": _days_since(_last(c, t, valid, n), as_of),
        "behavior_sessions_1d": sessions(1),
        "behavior_sessions_7d": sessions(7),
        "behavior_sessions_30d": sessions(30),
        "behavior_product_views_7d": _count(c, pv & w[7], n),
        "behavior_product_views_30d": _count(c, pv & w[30], n),
        "behavior_categories_30d": _distinct(c, fr.ev_category, browse & w[30], n),
        "behavior_searches_7d": _count(c, (k == code["search"]) & w[7], n),
        "behavior_minutes_on_site_30d": minutes,
        "behavior_returning": (sessions(30, older=True) > 0).astype(np.float64),
        "behavior_email_clicks_30d": _count(c, (k == code["email_click"]) & w[30], n),
        "behavior_orders": orders,
        "behavior_monetary": monetary,
        "behavior_days_since_order": since_order,
    }
    out |= _b2c_cart(fr, as_of, w[30])
    out |= _b2c_lifecycle(fr, as_of, out, w[90])
    return _checked(out, fs)


def _b2c_cart(fr: B2CFrame, as_of: int, w30: np.ndarray) -> dict[str, np.ndarray]:
    """The open cart: adds minus removes since the last purchase, within 30 days."""
    n, c, t, k, code = fr.n, fr.ev_cust, fr.ev_ts, fr.ev_type, B2C_CODE
    last_buy = _last(c, t, w30 & (k == code["purchase"]), n)
    open_ = w30 & (t > last_buy[c])
    add, rem = open_ & (k == code["add_to_cart"]), open_ & (k == code["remove_from_cart"])
    qty = np.nan_to_num(fr.ev_qty, nan=1.0)
    val = np.nan_to_num(fr.ev_price, nan=0.0) * qty
    items = np.maximum(_count(c, add, n, qty) - _count(c, rem, n, qty), 0.0)
    value = np.maximum(_count(c, add, n, val) - _count(c, rem, n, val), 0.0)
    w7 = w30 & (as_of - t < 7 * DAY)
    last_add = _last(c, t, add, n)
    minutes = np.where(last_add >= 0, (as_of - last_add) / 60.0, np.nan)
    checkout = _count(c, open_ & (k == code["checkout_start"]), n)
    return {
        "cart_items": items,
        "cart_value": np.where(items > 0, value, 0.0),
        "cart_adds_7d": _count(c, w7 & (k == code["add_to_cart"]), n),
        "cart_removes_7d": _count(c, w7 & (k == code["remove_from_cart"]), n),
        "cart_minutes_since_add": minutes,
        "cart_abandoned": ((items > 0) & (minutes >= 30)).astype(np.float64),
        "cart_checkout_no_purchase": (checkout > 0).astype(np.float64),
    }


def _b2c_lifecycle(
    fr: B2CFrame, as_of: int, f: dict[str, np.ndarray], w90: np.ndarray
) -> dict[str, np.ndarray]:
    n, c, k = fr.n, fr.ev_cust, fr.ev_type
    orders, since = f["behavior_orders"], f["behavior_days_since_order"]
    active90 = ~np.isnan(f["behavior_recency_days"])
    intent = _count(c, w90 & INTENT_LUT[k], n) > 0
    stage = np.select(
        [
            (orders > 0) & (since > 180) & ~active90,
            (orders > 0) & (since > 90),
            orders >= 5,
            orders >= 2,
            orders >= 1,
            intent,
            fr.cust_consent_email > 0,
        ],
        ["churned", "lapsed", "loyalist", "repeat", "purchaser", "lead", "subscriber"],
        "visitor",
    ).astype(object)
    return {
        "lifecycle_stage": stage,
        "lifecycle_tenure_days": (as_of - fr.cust_created) / DAY,
        "lifecycle_channel": fr.cust_channel,
        "lifecycle_device": fr.cust_device,
        "lifecycle_consent_email": fr.cust_consent_email.astype(np.float64),
        "lifecycle_consent_sms": fr.cust_consent_sms.astype(np.float64),
    }


def _checked(out: dict[str, np.ndarray], fs: FeatureSet) -> dict[str, np.ndarray]:
    """The declaration is the contract: exactly the declared names, in declared order."""
    got, want = set(out), set(fs.names)
    if got != want:
        raise RuntimeError(
            f"{fs.name}: computed {sorted(got - want)} undeclared, {sorted(want - got)} missing"
        )
    return {name: out[name] for name in fs.names}


def compute(fr: B2BFrame | B2CFrame, as_of: int, conf: MotionConfig, fs: FeatureSet) -> dict[str, np.ndarray]:
    if isinstance(fr, B2CFrame):
        return compute_b2c(fr, as_of, conf, fs)
    return compute_b2b(fr, as_of, conf, fs)
