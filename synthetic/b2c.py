"""B2C: sessions with a weekly rhythm, carts, checkouts, purchases and recovered abandoned carts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from leadscore.motions import CHANNELS, DEVICES
from synthetic.common import (
    B2C_DAYS,
    B2C_START,
    CATEGORIES,
    CATEGORY_PRICE,
    DAY,
    NONE,
    Writers,
    Written,
    choice,
    ids,
    sigmoid,
    ts,
)


def _b2c_chunk(
    rng: np.random.Generator, k_chunk: int, c0: int, n: int, event0: int, order0: int, sessions_scale: float
) -> dict[str, pa.Table]:
    cust = c0 + np.arange(n)
    end = B2C_START + B2C_DAYS * DAY
    created = B2C_START - rng.integers(0, 120, n) * DAY + rng.integers(0, (B2C_DAYS - 10) * DAY, n)
    consent_email = rng.random(n) < 0.55
    consent_sms = rng.random(n) < 0.25
    rate = np.exp(rng.normal(np.log(0.045), 0.9, n)) * sessions_scale  # sessions per day
    keen = sigmoid(rng.normal(-1.2, 1.0, n) + 0.4 * consent_email)  # purchase propensity
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
    recover = abandoned & (rng.random(ns) < sigmoid(-2.6 + 2.5 * k + 0.5 * np.log1p(cart / 50)))
    r_t = s_t + (rng.exponential(1.5, ns) * DAY).astype(np.int64) + 600
    recover &= r_t < end
    # Event expansion: one block per session (page, search, product, add, remove, wish, checkout, buy),
    # then recovery sessions (page view, checkout, purchase of the same cart).
    kinds = (
        "page_view",
        "search",
        "product_view",
        "add_to_cart",
        "remove_from_cart",
        "wishlist_add",
        "checkout_start",
        "purchase",
    )
    counts = np.stack(
        [n_page, n_search, n_prod, n_add, n_rem, n_wish, checkout.astype(int), buy.astype(int)], 1
    )
    per = counts.sum(1)
    ev_s = np.repeat(np.arange(ns), per)
    ev_k = np.repeat(np.tile(np.arange(len(kinds)), ns), counts.ravel())
    pos = np.arange(len(ev_s)) - np.repeat(np.cumsum(per) - per, per)
    ev_t = s_t[ev_s] + pos * 45 + rng.integers(0, 40, len(ev_s))
    rs = np.flatnonzero(recover)
    ev_src = np.concatenate([ev_s, np.repeat(rs, 3)])  # session whose cart the event concerns
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
    category = np.where(product_kind, np.asarray(CATEGORIES, dtype=object)[cat[src]], NONE)
    product = np.where(
        product_kind, np.char.add("P", (cat[src] * 1000 + src % 997).astype(str)).astype(object), NONE
    )
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
    cust_ids = ids("C", cust, 8)
    buy_cust = ids("C", cust[c_all[is_buy]], 8)
    return {
        "customers": pa.table(
            {
                "customer_id": cust_ids,
                "created_at": ts(created),
                "channel": pa.array(
                    np.where(rng.random(n) < 0.04, NONE, choice(rng, CHANNELS, n)), pa.string()
                ),
                "country": pa.array(choice(rng, ("US", "GB", "DE", "FR", "ES", "IT"), n), pa.string()),
                "device": pa.array(choice(rng, DEVICES, n, p=[0.6, 0.32, 0.08]), pa.string()),
                "consent_email": pa.array(consent_email),
                "consent_sms": pa.array(consent_sms),
            }
        ),
        "events": pa.table(
            {
                "event_id": ids("E", event0 + np.arange(ne), 10),
                "ts": ts(t_all[order]),
                "customer_id": ids("C", cust[c_all[order]], 8),
                "session_id": ids(f"S{k_chunk}-", sid_all[order], 8),
                "type": pa.array(k_names[k_all[order]], pa.string()),
                "product_id": pa.array(product[order], pa.string()),
                "category": pa.array(category[order], pa.string()),
                "price": pa.array(price[order]),
                "quantity": pa.array(quantity[order]),
            }
        ),
        "orders": pa.table(
            {
                "order_id": ids("O", order0 + np.arange(n_o), 9),
                "customer_id": buy_cust,
                "ts": ts(t_all[is_buy]),
                "amount": pa.array(amount),
                "margin": pa.array(np.round(amount * rng.uniform(0.1, 0.4, n_o), 2)),
            }
        ),
        "outcomes": pa.table(
            {
                "customer_id": pa.concat_arrays([buy_cust, ids("C", cust[s_c[abandoned_checkout]], 8)]),
                "purchased": pa.array(np.r_[np.ones(n_o, bool), np.zeros(len(abandoned_checkout), bool)]),
                "value": pa.array(np.r_[amount, np.full(len(abandoned_checkout), np.nan)]),
                "occurred_at": ts(np.r_[t_all[is_buy], s_t[abandoned_checkout] + 1800].clip(max=end - 1)),
            }
        ),
        "truth": pa.table({"customer_id": cust_ids, "p_true": pa.array(keen), "rate": pa.array(rate)}),
    }


def generate_b2c(
    n_customers: int,
    seed: int,
    out: str | Path,
    sessions_scale: float = 1.0,
    chunk: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> Written:
    """Write customers, events, orders, outcomes (and truth) Parquet files for ``n_customers``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    w = Writers(out)
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
