"""B2B: accounts with an ICP fit, in-market periods, leads with buying roles, intent surges before wins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from leadscore.motions import BUYING_ROLES, SENIORITIES
from synthetic.common import (
    B2B_DAYS,
    B2B_START,
    DAY,
    ICP_EMPLOYEES,
    ICP_INDUSTRIES,
    ICP_REGIONS,
    ICP_REVENUE,
    INDUSTRIES,
    NONE,
    REGIONS,
    TOPICS,
    Writers,
    Written,
    choice,
    ids,
    sigmoid,
    ts,
)


def _b2b_accounts(n_accounts: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 0])
    emp = np.round(np.exp(rng.normal(5.3, 1.6, n_accounts))).clip(3, 300_000)
    rev = emp * np.exp(rng.normal(np.log(180_000), 0.6, n_accounts))
    region = choice(rng, tuple(REGIONS), n_accounts, p=[0.45, 0.3, 0.15, 0.1])
    country = np.array(
        [
            REGIONS[r][i % len(REGIONS[r])]
            for r, i in zip(region, rng.integers(0, 12, n_accounts), strict=True)
        ],
        dtype=object,
    )
    industry = choice(rng, INDUSTRIES, n_accounts)
    fit = (
        np.isin(industry, ICP_INDUSTRIES).astype(float)
        + ((emp >= ICP_EMPLOYEES[0]) & (emp <= ICP_EMPLOYEES[1]))
        + ((rev >= ICP_REVENUE[0]) & (rev <= ICP_REVENUE[1]))
        + np.isin(region, ICP_REGIONS)
    ) / 4.0
    in_market = rng.random(n_accounts) < 0.12 + 0.3 * fit
    market_start = B2B_START + rng.integers(0, (B2B_DAYS - 60) * DAY, n_accounts)
    owner = np.array(
        [f"rep_{r.lower()}_{i:02d}" for r, i in zip(region, rng.integers(0, 8, n_accounts), strict=True)],
        dtype=object,
    )
    segment = np.where(emp >= 1000, "enterprise", np.where(emp >= 200, "mid_market", "smb"))
    territory = np.char.add(np.char.add(region.astype(str), "-"), segment.astype(str)).astype(object)
    # Missing values, as in a real CRM export.
    industry = np.where(rng.random(n_accounts) < 0.03, NONE, industry)
    rev = np.where(rng.random(n_accounts) < 0.08, np.nan, rev)
    owner = np.where(rng.random(n_accounts) < 0.05, NONE, owner)
    return dict(
        emp=emp,
        rev=rev,
        region=region,
        country=country,
        industry=industry,
        fit=fit,
        in_market=in_market,
        market_start=market_start,
        owner=owner,
        territory=territory,
    )


def _b2b_chunk(
    rng: np.random.Generator, acc: dict, a_idx: np.ndarray, lead0: int, event0: int, events_per_lead: float
) -> dict[str, pa.Table]:
    n = len(a_idx)
    lead_no = lead0 + np.arange(n)
    fit, in_mkt = acc["fit"][a_idx], acc["in_market"][a_idx]
    created = B2B_START + rng.integers(0, (B2B_DAYS - 20) * DAY, n)
    in_mkt_created = np.where(in_mkt, np.maximum(created, acc["market_start"][a_idx] - 20 * DAY), created)
    created = np.where(in_mkt & (rng.random(n) < 0.6), in_mkt_created, created).clip(
        max=B2B_START + (B2B_DAYS - 5) * DAY
    )
    role = choice(rng, BUYING_ROLES, n, p=[0.12, 0.15, 0.2, 0.08, 0.3, 0.15])
    senior_p = {
        "economic_buyer": [0, 0.05, 0.25, 0.4, 0.3],
        "champion": [0.1, 0.4, 0.35, 0.15, 0],
        "technical_evaluator": [0.35, 0.45, 0.15, 0.05, 0],
        "procurement": [0.3, 0.5, 0.2, 0, 0],
        "user": [0.7, 0.25, 0.05, 0, 0],
        "unknown": [0.4, 0.3, 0.2, 0.08, 0.02],
    }
    seniority = np.empty(n, dtype=object)
    for r, p in senior_p.items():
        m = role == r
        seniority[m] = choice(rng, SENIORITIES, int(m.sum()), p=p)
    business = rng.random(n) < 0.82
    engaged = rng.random(n) < 0.3 + 0.3 * in_mkt + 0.15 * fit
    # Buying group: economic buyer and champion engaged somewhere in the account.
    local = np.unique(a_idx, return_inverse=True)[1]
    eb = np.bincount(local, weights=(engaged & (role == "economic_buyer")).astype(float)) > 0
    ch = np.bincount(local, weights=(engaged & (role == "champion")).astype(float)) > 0
    multi = (eb & ch)[local]
    role_term = np.select(
        [role == "economic_buyer", role == "champion", role == "unknown"], [0.4, 0.3, -0.5], 0.0
    )
    logit = (
        -5.0
        + 2.4 * fit
        + 1.1 * in_mkt
        + 0.5 * business
        + role_term
        + 0.9 * multi
        + 0.3 * engaged
        + rng.normal(0, 0.5, n)
    )
    p_true = sigmoid(logit)
    won = rng.random(n) < p_true
    size = np.log10(acc["emp"][a_idx])
    cycle = (25 + rng.gamma(2.0, 20 + 12 * size, n)) * DAY
    close = created + cycle.astype(np.int64)

    # Outcomes: funnel stages with times (only what has happened by the end of the data).
    reach_opp = won | (rng.random(n) < 0.08 + 0.25 * fit)
    reach_sql = reach_opp | (rng.random(n) < 0.25)
    reach_mql = reach_sql | (rng.random(n) < 0.5)
    value = np.round(4000 * np.sqrt(acc["emp"][a_idx] / 50) * np.exp(rng.normal(0, 0.4, n)), 2)
    parts = []
    for stage, mask, t in (
        ("mql", reach_mql, created + rng.integers(0, 5 * DAY, n)),
        ("sql", reach_sql, created + (0.25 * cycle).astype(np.int64)),
        ("opportunity", reach_opp, created + (0.55 * cycle).astype(np.int64)),
        ("won", reach_opp & won, close),
        ("lost", reach_opp & ~won, close),
    ):
        keep = mask & (t < B2B_START + B2B_DAYS * DAY)
        parts.append((np.flatnonzero(keep), stage, t[keep]))
    o_idx = np.concatenate([p[0] for p in parts])
    o_stage = np.concatenate([np.full(len(p[0]), p[1], dtype=object) for p in parts])
    o_ts = np.concatenate([p[2] for p in parts])
    o_val = np.where(np.isin(o_stage, ("won", "opportunity")), value[o_idx], np.nan)

    # Lead events: a background rhythm plus, for winners and some in-market leads, a surge before close.
    end = B2B_START + B2B_DAYS * DAY
    lo = np.maximum(created - 20 * DAY, B2B_START)
    hi = np.minimum(np.where(won, close, created + 200 * DAY), end)
    base_rate = events_per_lead / 200.0 * (0.35 + 1.0 * engaged)
    n_base = rng.poisson(base_rate * (hi - lo) / DAY)
    surge = won | (in_mkt & engaged & (rng.random(n) < 0.35))
    s_end = np.where(won, close, np.minimum(created + rng.integers(20, 150, n) * DAY, end))
    s_lo = np.maximum(s_end - 45 * DAY, lo)
    n_surge = np.where(surge & (s_end > s_lo), rng.poisson(events_per_lead * 0.5, n), 0)
    base_types = (
        "page_view",
        "email_open",
        "email_click",
        "content_download",
        "webinar",
        "solution_page",
        "pricing_page",
        "demo_request",
        "trial_signup",
        "meeting_booked",
    )
    base_p = [0.36, 0.25, 0.1, 0.08, 0.04, 0.08, 0.05, 0.01, 0.01, 0.02]
    surge_types = (
        "pricing_page",
        "solution_page",
        "demo_request",
        "trial_signup",
        "meeting_booked",
        "webinar",
        "content_download",
        "page_view",
    )
    surge_p = [0.28, 0.24, 0.08, 0.07, 0.1, 0.05, 0.08, 0.1]
    e_lead = np.concatenate([np.repeat(np.arange(n), n_base), np.repeat(np.arange(n), n_surge)])
    nb = int(n_base.sum())
    span_b, span_s = (hi - lo)[e_lead[:nb]], (s_end - s_lo)[e_lead[nb:]]
    e_ts = np.concatenate(
        [
            lo[e_lead[:nb]] + (rng.random(nb) * span_b).astype(np.int64),
            s_lo[e_lead[nb:]] + (rng.random(len(span_s)) ** 0.6 * span_s).astype(np.int64),
        ]
    )
    e_type = np.concatenate(
        [choice(rng, base_types, nb, p=base_p), choice(rng, surge_types, len(e_lead) - nb, p=surge_p)]
    )
    # Account-level third-party intent (no lead): background for all, a surge when in market.
    ua, first = np.unique(a_idx, return_index=True)
    am = acc["in_market"][ua]
    n_ti = rng.poisson(0.6 + 5.0 * am)
    t_acc = np.repeat(np.arange(len(ua)), n_ti)
    ms = acc["market_start"][ua][t_acc]
    ti_ts = np.where(
        am[t_acc],
        ms + rng.integers(0, 75 * DAY, len(t_acc)),
        B2B_START + rng.integers(0, B2B_DAYS * DAY, len(t_acc)),
    ).clip(max=end - 1)
    ti_topic = choice(rng, TOPICS, len(t_acc), p=[0.3, 0.2, 0.2, 0.15, 0.15])
    ne = len(e_lead) + len(t_acc)
    ev_lead = np.concatenate([lead_no[e_lead], np.full(len(t_acc), -1)])
    ev_acc = np.concatenate([a_idx[e_lead], ua[t_acc]])
    ev_ts = np.concatenate([e_ts, ti_ts]).clip(B2B_START, end - 1)
    ev_type = np.concatenate([e_type, np.full(len(t_acc), "third_party_intent", dtype=object)])
    topic = np.concatenate([np.full(len(e_lead), None, dtype=object), ti_topic])
    # Late arrivals: order by time, then move ~2% of rows to the end of the chunk.
    order = np.argsort(ev_ts, kind="stable")
    late = rng.random(ne) < 0.02
    order = np.concatenate([order[~late[order]], order[late[order]]])
    lead_ids = ids("L", lead_no, 8)
    acc_ids = ids("A", a_idx, 7)
    ev_lead_o = ev_lead[order]
    ev_lead_ids = pa.compute.if_else(
        pa.array(ev_lead_o >= 0), ids("L", np.maximum(ev_lead_o, 0), 8), pa.scalar(None, pa.string())
    )
    titles = {
        "economic_buyer": "VP",
        "champion": "Head of Ops",
        "technical_evaluator": "Engineer",
        "procurement": "Buyer",
        "user": "Analyst",
        "unknown": "",
    }
    return {
        "leads": pa.table(
            {
                "lead_id": lead_ids,
                "account_id": acc_ids,
                "created_at": ts(created),
                "source": pa.array(
                    choice(
                        rng, ("web", "event", "outbound", "partner", "paid"), n, p=[0.4, 0.15, 0.2, 0.1, 0.15]
                    ),
                    pa.string(),
                ),
                "title": pa.array([titles[r] or None for r in role], pa.string()),
                "seniority": pa.array(np.where(rng.random(n) < 0.05, NONE, seniority), pa.string()),
                "buying_role": pa.array(role, pa.string()),
                "email_domain_type": pa.array(np.where(business, "business", "free"), pa.string()),
            }
        ),
        "events": pa.table(
            {
                "event_id": ids("E", event0 + np.arange(ne), 10),
                "ts": ts(ev_ts[order]),
                "account_id": ids("A", ev_acc[order], 7),
                "lead_id": ev_lead_ids,
                "type": pa.array(ev_type[order], pa.string()),
                "topic": pa.array(topic[order], pa.string()),
            }
        ),
        "outcomes": pa.table(
            {
                "lead_id": ids("L", lead_no[o_idx], 8),
                "account_id": ids("A", a_idx[o_idx], 7),
                "stage": pa.array(o_stage, pa.string()),
                "value": pa.array(o_val, pa.float64()),
                "occurred_at": ts(o_ts),
            }
        ),
        "truth": pa.table({"lead_id": lead_ids, "p_true": pa.array(p_true), "won": pa.array(won)}),
    }


def generate_b2b(
    n_leads: int,
    seed: int,
    out: str | Path,
    events_per_lead: float = 20.0,
    chunk_leads: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> Written:
    """Write accounts, leads, events, outcomes (and truth) Parquet files for ``n_leads`` leads."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_accounts = max(1, n_leads // 4)
    acc = _b2b_accounts(n_accounts, seed)
    rng0 = np.random.default_rng([seed, 1])
    lead_account = np.sort(rng0.choice(n_accounts, size=n_leads, p=_account_weights(acc["emp"])))
    w = Writers(out)
    w.write(
        "accounts",
        pa.table(
            {
                "account_id": ids("A", np.arange(n_accounts), 7),
                "name": pa.array([f"Company {i}" for i in range(n_accounts)], pa.string()),
                "industry": pa.array(acc["industry"], pa.string()),
                "employee_count": pa.array(acc["emp"]),
                "annual_revenue": pa.array(np.round(acc["rev"], 0)),
                "country": pa.array(acc["country"], pa.string()),
                "region": pa.array(acc["region"], pa.string()),
                "owner_id": pa.array(acc["owner"], pa.string()),
                "territory": pa.array(acc["territory"], pa.string()),
            }
        ),
    )
    event0 = 0
    for k, (s, e) in enumerate(_chunks_by_group(lead_account, chunk_leads)):
        tables = _b2b_chunk(
            np.random.default_rng([seed, 2, k]), acc, lead_account[s:e], s, event0, events_per_lead
        )
        event0 += tables["events"].num_rows
        for name, t in tables.items():
            w.write(name, t)
        if progress:
            progress(e - s)
    return Written(w.close(), out)


def _account_weights(emp: np.ndarray) -> np.ndarray:
    w = np.log1p(emp) ** 1.5
    return w / w.sum()


def _chunks_by_group(sorted_group: np.ndarray, size: int) -> Iterator[tuple[int, int]]:
    """Chunk boundaries near ``size`` that never split a group (an account's leads stay together)."""
    n, s = len(sorted_group), 0
    while s < n:
        e = min(s + size, n)
        while e < n and sorted_group[e] == sorted_group[e - 1]:
            e += 1
        yield s, e
        s = e
