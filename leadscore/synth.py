"""Synthetic event-level data with a documented story and a known ground truth.

B2B story: accounts have an ICP fit (industry, size, revenue, region). Some accounts are in market for a
while. A lead's chance to win grows with fit, with the account being in market, with a business email and a
senior buying role, and with a multi-threaded buying group (an economic buyer *and* a champion engaged).
Winners show an intent surge (pricing, solution and demo pages, meetings, third-party intent) in the weeks
before they close; cycles are long (1–9 months) and longer for big accounts; deal value grows with size.

B2C story: customers have an engagement rate and a purchase propensity. Sessions follow a weekly rhythm
(weekends busier); sessions hold page and product views, searches, cart adds and removes, checkouts and
purchases.  Abandoned carts are recovered within days more often when the cart is valuable and the customer
keen, so recency, cart value and engagement drive next-week purchase.

Both carry noise, missing values and late-arriving events (files are not in time order).  Generation runs in
chunks with one random stream per chunk, so the same seed gives byte-identical files at any scale, and memory
stays bounded.  ``truth.parquet`` holds the latent propensity for tests (never a model input).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.schema import BUYING_ROLES, CHANNELS, DEVICES, SENIORITIES

DAY = 86_400
B2B_START = np.datetime64("2025-01-01T00:00:00", "s").astype(np.int64)
B2B_DAYS = 540
B2C_START = np.datetime64("2026-02-01T00:00:00", "s").astype(np.int64)
B2C_DAYS = 150
INDUSTRIES = ("software", "financial_services", "healthcare", "manufacturing", "retail", "education",
              "logistics", "media")
REGIONS = {"NA": ("US", "CA"), "EMEA": ("GB", "DE", "FR", "NL"), "APAC": ("AU", "JP", "SG"), "LATAM": ("BR", "MX")}
TOPICS = ("crm", "marketing_automation", "analytics", "security", "data_platform")
CATEGORIES = ("shoes", "apparel", "electronics", "home", "beauty", "sports", "toys", "books")
CATEGORY_PRICE = np.array([80, 45, 300, 60, 30, 70, 25, 15], dtype=float)
# ICP used by the story; conf/b2b.yaml declares the same one for the features.
ICP_INDUSTRIES = ("software", "financial_services", "healthcare")
ICP_EMPLOYEES = (200, 5000)
ICP_REVENUE = (2e7, 2e9)
ICP_REGIONS = ("NA", "EMEA")


@dataclass(frozen=True)
class Written:
    tables: dict[str, int]
    out: Path


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _ids(prefix: str, idx: np.ndarray, width: int) -> pa.Array:
    """Zero-padded string ids built in Arrow (fast at 50M rows)."""
    s = pa.compute.utf8_lpad(pa.array(idx.astype(np.int64)).cast(pa.string()), width=width, padding="0")
    return pa.compute.binary_join_element_wise(prefix, s, "")


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype("datetime64[s]"), type=pa.timestamp("s"))


def _choice(rng: np.random.Generator, options: tuple[str, ...], n: int, p=None) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=p)]


class _Writers:
    """One ParquetWriter per table, opened lazily on the first chunk; deterministic settings."""

    def __init__(self, out: Path):
        self.out, self.writers, self.rows = out, {}, {}

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self.writers:
            self.writers[name] = pq.ParquetWriter(self.out / f"{name}.parquet", table.schema,
                                                  compression="zstd", write_statistics=True)
            self.rows[name] = 0
        self.writers[name].write_table(table, row_group_size=1_000_000)
        self.rows[name] += table.num_rows

    def close(self) -> dict[str, int]:
        for w in self.writers.values():
            w.close()
        return self.rows


# ---------------------------------------------------------------- B2B

def _b2b_accounts(n_accounts: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 0])
    emp = np.round(np.exp(rng.normal(5.3, 1.6, n_accounts))).clip(3, 300_000)
    rev = emp * np.exp(rng.normal(np.log(180_000), 0.6, n_accounts))
    region = _choice(rng, tuple(REGIONS), n_accounts, p=[0.45, 0.3, 0.15, 0.1])
    country = np.array([REGIONS[r][i % len(REGIONS[r])] for r, i in
                        zip(region, rng.integers(0, 12, n_accounts), strict=True)], dtype=object)
    industry = _choice(rng, INDUSTRIES, n_accounts)
    fit = (np.isin(industry, ICP_INDUSTRIES).astype(float)
           + ((emp >= ICP_EMPLOYEES[0]) & (emp <= ICP_EMPLOYEES[1]))
           + ((rev >= ICP_REVENUE[0]) & (rev <= ICP_REVENUE[1]))
           + np.isin(region, ICP_REGIONS)) / 4.0
    in_market = rng.random(n_accounts) < 0.12 + 0.3 * fit
    market_start = B2B_START + rng.integers(0, (B2B_DAYS - 60) * DAY, n_accounts)
    owner = np.array([f"rep_{r.lower()}_{i:02d}" for r, i in
                      zip(region, rng.integers(0, 8, n_accounts), strict=True)], dtype=object)
    segment = np.where(emp >= 1000, "enterprise", np.where(emp >= 200, "mid_market", "smb"))
    territory = np.char.add(np.char.add(region.astype(str), "-"), segment.astype(str)).astype(object)
    # Missing values, as in a real CRM export.
    industry = np.where(rng.random(n_accounts) < 0.03, None, industry)
    rev = np.where(rng.random(n_accounts) < 0.08, np.nan, rev)
    owner = np.where(rng.random(n_accounts) < 0.05, None, owner)
    return dict(emp=emp, rev=rev, region=region, country=country, industry=industry, fit=fit,
                in_market=in_market, market_start=market_start, owner=owner, territory=territory)


def _b2b_chunk(rng: np.random.Generator, acc: dict, a_idx: np.ndarray, lead0: int, event0: int,
               events_per_lead: float) -> dict[str, pa.Table]:
    n = len(a_idx)
    lead_no = lead0 + np.arange(n)
    fit, in_mkt = acc["fit"][a_idx], acc["in_market"][a_idx]
    created = B2B_START + rng.integers(0, (B2B_DAYS - 20) * DAY, n)
    in_mkt_created = np.where(in_mkt, np.maximum(created, acc["market_start"][a_idx] - 20 * DAY), created)
    created = np.where(in_mkt & (rng.random(n) < 0.6), in_mkt_created, created).clip(max=B2B_START + (B2B_DAYS - 5) * DAY)
    role = _choice(rng, BUYING_ROLES, n, p=[0.12, 0.15, 0.2, 0.08, 0.3, 0.15])
    senior_p = {"economic_buyer": [0, .05, .25, .4, .3], "champion": [.1, .4, .35, .15, 0],
                "technical_evaluator": [.35, .45, .15, .05, 0], "procurement": [.3, .5, .2, 0, 0],
                "user": [.7, .25, .05, 0, 0], "unknown": [.4, .3, .2, .08, .02]}
    seniority = np.empty(n, dtype=object)
    for r, p in senior_p.items():
        m = role == r
        seniority[m] = _choice(rng, SENIORITIES, int(m.sum()), p=p)
    business = rng.random(n) < 0.82
    engaged = rng.random(n) < 0.3 + 0.3 * in_mkt + 0.15 * fit
    # Buying group: economic buyer and champion engaged somewhere in the account.
    local = np.unique(a_idx, return_inverse=True)[1]
    eb = np.bincount(local, weights=(engaged & (role == "economic_buyer")).astype(float)) > 0
    ch = np.bincount(local, weights=(engaged & (role == "champion")).astype(float)) > 0
    multi = (eb & ch)[local]
    role_term = np.select([role == "economic_buyer", role == "champion", role == "unknown"], [0.4, 0.3, -0.5], 0.0)
    logit = (-5.0 + 2.4 * fit + 1.1 * in_mkt + 0.5 * business + role_term + 0.9 * multi
             + 0.3 * engaged + rng.normal(0, 0.5, n))
    p_true = _sigmoid(logit)
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
    for stage, mask, t in (("mql", reach_mql, created + rng.integers(0, 5 * DAY, n)),
                           ("sql", reach_sql, created + (0.25 * cycle).astype(np.int64)),
                           ("opportunity", reach_opp, created + (0.55 * cycle).astype(np.int64)),
                           ("won", reach_opp & won, close), ("lost", reach_opp & ~won, close)):
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
    base_types = ("page_view", "email_open", "email_click", "content_download", "webinar", "solution_page",
                  "pricing_page", "demo_request", "trial_signup", "meeting_booked")
    base_p = [0.36, 0.25, 0.1, 0.08, 0.04, 0.08, 0.05, 0.01, 0.01, 0.02]
    surge_types = ("pricing_page", "solution_page", "demo_request", "trial_signup", "meeting_booked",
                   "webinar", "content_download", "page_view")
    surge_p = [0.28, 0.24, 0.08, 0.07, 0.1, 0.05, 0.08, 0.1]
    e_lead = np.concatenate([np.repeat(np.arange(n), n_base), np.repeat(np.arange(n), n_surge)])
    nb = int(n_base.sum())
    span_b, span_s = (hi - lo)[e_lead[:nb]], (s_end - s_lo)[e_lead[nb:]]
    e_ts = np.concatenate([lo[e_lead[:nb]] + (rng.random(nb) * span_b).astype(np.int64),
                           s_lo[e_lead[nb:]] + (rng.random(len(span_s)) ** 0.6 * span_s).astype(np.int64)])
    e_type = np.concatenate([_choice(rng, base_types, nb, p=base_p),
                             _choice(rng, surge_types, len(e_lead) - nb, p=surge_p)])
    # Account-level third-party intent (no lead): background for all, a surge when in market.
    ua, first = np.unique(a_idx, return_index=True)
    am = acc["in_market"][ua]
    n_ti = rng.poisson(0.6 + 5.0 * am)
    t_acc = np.repeat(np.arange(len(ua)), n_ti)
    ms = acc["market_start"][ua][t_acc]
    ti_ts = np.where(am[t_acc], ms + rng.integers(0, 75 * DAY, len(t_acc)),
                     B2B_START + rng.integers(0, B2B_DAYS * DAY, len(t_acc))).clip(max=end - 1)
    ti_topic = _choice(rng, TOPICS, len(t_acc), p=[0.3, 0.2, 0.2, 0.15, 0.15])
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
    lead_ids = _ids("L", lead_no, 8)
    acc_ids = _ids("A", a_idx, 7)
    ev_lead_o = ev_lead[order]
    ev_lead_ids = pa.compute.if_else(pa.array(ev_lead_o >= 0), _ids("L", np.maximum(ev_lead_o, 0), 8),
                                     pa.scalar(None, pa.string()))
    titles = {"economic_buyer": "VP", "champion": "Head of Ops", "technical_evaluator": "Engineer",
              "procurement": "Buyer", "user": "Analyst", "unknown": ""}
    return {
        "leads": pa.table({
            "lead_id": lead_ids, "account_id": acc_ids, "created_at": _ts(created),
            "source": pa.array(_choice(rng, ("web", "event", "outbound", "partner", "paid"), n,
                                       p=[0.4, 0.15, 0.2, 0.1, 0.15]), pa.string()),
            "title": pa.array([titles[r] or None for r in role], pa.string()),
            "seniority": pa.array(np.where(rng.random(n) < 0.05, None, seniority), pa.string()),
            "buying_role": pa.array(role, pa.string()),
            "email_domain_type": pa.array(np.where(business, "business", "free"), pa.string()),
        }),
        "events": pa.table({
            "event_id": _ids("E", event0 + np.arange(ne), 10), "ts": _ts(ev_ts[order]),
            "account_id": _ids("A", ev_acc[order], 7), "lead_id": ev_lead_ids,
            "type": pa.array(ev_type[order], pa.string()), "topic": pa.array(topic[order], pa.string()),
        }),
        "outcomes": pa.table({
            "lead_id": _ids("L", lead_no[o_idx], 8), "account_id": _ids("A", a_idx[o_idx], 7),
            "stage": pa.array(o_stage, pa.string()), "value": pa.array(o_val, pa.float64()),
            "occurred_at": _ts(o_ts),
        }),
        "truth": pa.table({"lead_id": lead_ids, "p_true": pa.array(p_true), "won": pa.array(won)}),
    }


def generate_b2b(n_leads: int, seed: int, out: str | Path, events_per_lead: float = 20.0,
                 chunk_leads: int = 100_000, progress: Callable[[int], None] | None = None) -> Written:
    """Write accounts, leads, events, outcomes (and truth) Parquet files for ``n_leads`` leads."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_accounts = max(1, n_leads // 4)
    acc = _b2b_accounts(n_accounts, seed)
    rng0 = np.random.default_rng([seed, 1])
    lead_account = np.sort(rng0.choice(n_accounts, size=n_leads, p=_account_weights(acc["emp"])))
    w = _Writers(out)
    w.write("accounts", pa.table({
        "account_id": _ids("A", np.arange(n_accounts), 7),
        "name": pa.array([f"Company {i}" for i in range(n_accounts)], pa.string()),
        "industry": pa.array(acc["industry"], pa.string()), "employee_count": pa.array(acc["emp"]),
        "annual_revenue": pa.array(np.round(acc["rev"], 0)), "country": pa.array(acc["country"], pa.string()),
        "region": pa.array(acc["region"], pa.string()), "owner_id": pa.array(acc["owner"], pa.string()),
        "territory": pa.array(acc["territory"], pa.string()),
    }))
    event0 = 0
    for k, (s, e) in enumerate(_chunks_by_group(lead_account, chunk_leads)):
        tables = _b2b_chunk(np.random.default_rng([seed, 2, k]), acc, lead_account[s:e], s, event0,
                            events_per_lead)
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


# ---------------------------------------------------------------- B2C

def _b2c_chunk(rng: np.random.Generator, k_chunk: int, c0: int, n: int, event0: int, order0: int,
               sessions_scale: float) -> dict[str, pa.Table]:
    cust = c0 + np.arange(n)
    end = B2C_START + B2C_DAYS * DAY
    created = B2C_START - rng.integers(0, 120, n) * DAY + rng.integers(0, (B2C_DAYS - 10) * DAY, n)
    consent_email = rng.random(n) < 0.55
    consent_sms = rng.random(n) < 0.25
    rate = np.exp(rng.normal(np.log(0.045), 0.9, n)) * sessions_scale   # sessions per day
    keen = _sigmoid(rng.normal(-1.2, 1.0, n) + 0.4 * consent_email)     # purchase propensity
    start = np.maximum(created, B2C_START)
    n_sess = rng.poisson(rate * (end - start) / DAY)
    s_c = np.repeat(np.arange(n), n_sess)
    s_t = start[s_c] + (rng.random(len(s_c)) * (end - start)[s_c]).astype(np.int64)
    dow = ((s_t // DAY) + 3) % 7  # 1970-01-01 was a Thursday
    keep = rng.random(len(s_c)) < np.where(dow >= 5, 1.0, 0.7)
    s_c, s_t = s_c[keep], s_t[keep]
    ns = len(s_c)
    k = keen[s_c]
    n_page = rng.poisson(1.5, ns) + 1
    n_search = rng.poisson(0.4 + 0.4 * k)
    n_prod = rng.poisson(1.5 + 3 * k)
    n_add = rng.binomial(n_prod, 0.1 + 0.35 * k)
    n_rem = rng.binomial(n_add, 0.2)
    n_wish = rng.binomial(1, 0.05, ns)
    cat = rng.integers(0, len(CATEGORIES), ns)
    unit = CATEGORY_PRICE[cat] * np.exp(rng.normal(0, 0.5, ns))
    qty = rng.integers(1, 3, ns)
    cart = (n_add - n_rem) * unit * qty
    checkout = (n_add > n_rem) & (rng.random(ns) < 0.35 + 0.5 * k)
    buy = checkout & (rng.random(ns) < 0.25 + 0.35 * k)
    # Abandoned carts come back within days, more often when valuable and keen.
    abandoned = (n_add > n_rem) & ~buy
    recover = abandoned & (rng.random(ns) < _sigmoid(-2.6 + 2.5 * k + 0.5 * np.log1p(cart / 50)))
    r_t = s_t + (rng.exponential(1.5, ns) * DAY).astype(np.int64) + 600
    recover &= r_t < end
    # Event expansion: one block per session (page, search, product, add, remove, wish, checkout, buy),
    # then recovery sessions (page view, checkout, purchase of the same cart).
    kinds = ("page_view", "search", "product_view", "add_to_cart", "remove_from_cart", "wishlist_add",
             "checkout_start", "purchase")
    counts = np.stack([n_page, n_search, n_prod, n_add, n_rem, n_wish, checkout.astype(int), buy.astype(int)], 1)
    per = counts.sum(1)
    ev_s = np.repeat(np.arange(ns), per)
    ev_k = np.repeat(np.tile(np.arange(len(kinds)), ns), counts.ravel())
    pos = np.arange(len(ev_s)) - np.repeat(np.cumsum(per) - per, per)
    ev_t = s_t[ev_s] + pos * 45 + rng.integers(0, 40, len(ev_s))
    rs = np.flatnonzero(recover)
    ev_src = np.concatenate([ev_s, np.repeat(rs, 3)])            # session whose cart the event concerns
    ev_sid = np.concatenate([ev_s, ns + np.repeat(np.arange(len(rs)), 3)])
    ev_k = np.concatenate([ev_k, np.tile([0, 6, 7], len(rs))])
    ev_t = np.concatenate([ev_t, np.repeat(r_t[rs], 3) + np.tile([0, 60, 120], len(rs))])
    # Email clicks for consenting customers (campaigns), each its own one-event session.
    n_em = rng.poisson(np.where(consent_email, 2.0, 0.0))
    em_c = np.repeat(np.arange(n), n_em)
    em_t = start[em_c] + (rng.random(len(em_c)) * (end - start)[em_c]).astype(np.int64)
    n_em_ev = len(em_c)
    product_kind = np.r_[np.isin(ev_k, (2, 3, 4, 5)), np.zeros(n_em_ev, bool)]
    cart_kind = np.r_[ev_k >= 6, np.zeros(n_em_ev, bool)]
    src = np.r_[ev_src, np.zeros(n_em_ev, int)]
    c_all = np.r_[s_c[ev_src], em_c]
    t_all = np.r_[ev_t, em_t].clip(max=end - 1)
    k_all = np.r_[ev_k, np.full(n_em_ev, 8)]
    sid_all = np.r_[ev_sid, ns + len(rs) + np.arange(n_em_ev)]
    price = np.where(product_kind | cart_kind, np.round(unit[src], 2), np.nan)
    price = np.where(rng.random(len(price)) < 0.01, np.nan, price)
    quantity = np.where(np.isin(k_all, (3, 4)), qty[src], np.where(product_kind, 1, np.nan))
    category = np.where(product_kind, np.asarray(CATEGORIES, dtype=object)[cat[src]], None)
    product = np.where(product_kind, np.char.add("P", (cat[src] * 1000 + src % 997).astype(str)).astype(object), None)
    k_names = np.asarray(kinds + ("email_click",), dtype=object)
    ne = len(c_all)
    order = np.argsort(t_all, kind="stable")
    late = rng.random(ne) < 0.02
    order = np.concatenate([order[~late[order]], order[late[order]]])
    # Orders and outcomes: one order per purchase event; abandoned checkouts are explicit non-purchases.
    is_buy = np.flatnonzero(k_all == 7)
    is_buy = is_buy[np.argsort(t_all[is_buy], kind="stable")]
    amount = np.round(np.maximum(cart[src[is_buy]], unit[src[is_buy]]), 2)
    n_o = len(is_buy)
    abandoned_checkout = np.flatnonzero(checkout & ~buy & ~recover)
    cust_ids = _ids("C", cust, 8)
    buy_cust = _ids("C", cust[c_all[is_buy]], 8)
    return {
        "customers": pa.table({
            "customer_id": cust_ids, "created_at": _ts(created),
            "channel": pa.array(np.where(rng.random(n) < 0.04, None, _choice(rng, CHANNELS, n)), pa.string()),
            "country": pa.array(_choice(rng, ("US", "GB", "DE", "FR", "ES", "IT"), n), pa.string()),
            "device": pa.array(_choice(rng, DEVICES, n, p=[0.6, 0.32, 0.08]), pa.string()),
            "consent_email": pa.array(consent_email), "consent_sms": pa.array(consent_sms),
        }),
        "events": pa.table({
            "event_id": _ids("E", event0 + np.arange(ne), 10), "ts": _ts(t_all[order]),
            "customer_id": _ids("C", cust[c_all[order]], 8),
            "session_id": _ids(f"S{k_chunk}-", sid_all[order], 8),
            "type": pa.array(k_names[k_all[order]], pa.string()),
            "product_id": pa.array(product[order], pa.string()),
            "category": pa.array(category[order], pa.string()),
            "price": pa.array(price[order]), "quantity": pa.array(quantity[order]),
        }),
        "orders": pa.table({
            "order_id": _ids("O", order0 + np.arange(n_o), 9), "customer_id": buy_cust,
            "ts": _ts(t_all[is_buy]), "amount": pa.array(amount),
            "margin": pa.array(np.round(amount * rng.uniform(0.1, 0.4, n_o), 2)),
        }),
        "outcomes": pa.table({
            "customer_id": pa.concat_arrays([buy_cust, _ids("C", cust[s_c[abandoned_checkout]], 8)]),
            "purchased": pa.array(np.r_[np.ones(n_o, bool), np.zeros(len(abandoned_checkout), bool)]),
            "value": pa.array(np.r_[amount, np.full(len(abandoned_checkout), np.nan)]),
            "occurred_at": _ts(np.r_[t_all[is_buy], s_t[abandoned_checkout] + 1800].clip(max=end - 1)),
        }),
        "truth": pa.table({"customer_id": cust_ids, "p_true": pa.array(keen), "rate": pa.array(rate)}),
    }


def generate_b2c(n_customers: int, seed: int, out: str | Path, sessions_scale: float = 1.0,
                 chunk: int = 100_000, progress: Callable[[int], None] | None = None) -> Written:
    """Write customers, events, orders, outcomes (and truth) Parquet files for ``n_customers``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    w = _Writers(out)
    event0 = order0 = 0
    for k, c0 in enumerate(range(0, n_customers, chunk)):
        n = min(chunk, n_customers - c0)
        tables = _b2c_chunk(np.random.default_rng([seed, 3, k]), k, c0, n, event0, order0, sessions_scale)
        event0 += tables["events"].num_rows
        order0 += tables["orders"].num_rows
        for name, t in tables.items():
            w.write(name, t)
        if progress:
            progress(n)
    return Written(w.close(), out)


def generate(motion: str, n: int, seed: int, out: str | Path, scale: float | None = None,
             progress: Callable[[int], None] | None = None) -> Written:
    """Generate a motion's canonical tables (hybrid uses the B2B tables)."""
    if motion in ("b2b", "hybrid"):
        return generate_b2b(n, seed, out, events_per_lead=scale or 20.0, progress=progress)
    if motion == "b2c":
        return generate_b2c(n, seed, out, sessions_scale=scale or 1.0, progress=progress)
    raise ValueError(f"unknown motion {motion!r}; expected b2b, b2c or hybrid")


def read_truth(data_dir: str | Path) -> pd.DataFrame:
    return pd.read_parquet(Path(data_dir) / "truth.parquet")
