"""Feature throughput: the project's pipeline against a straightforward pandas groupby-apply, and (B2B) against
DuckDB computing every feature of the set in SQL over every lead (values checked equal, all features, all leads):
from the same loaded tables with the same cleaning (a repeated event id counts once), without it, and from the
Parquet files (then our load counts too). Ours prepares a data set's arrays once and then computes each as-of
snapshot from them; a training set is several snapshots, so the ratio is given for one snapshot, for each further
one, and for a training set of the motion's snapshot count.

Run in its own process (``python -m bench.features b2c``) so peak memory is its own. The peer computes a
representative subset of the same features per entity with ``groupby().apply`` on a sample of entities;
the benchmark checks that both give the same values on that sample, then compares events per second.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.frames import HIGH_INTENT_TYPES
from features.historical import features_as_of, latest_time
from features.prepare import prepare
from leadscore.config import MotionConfig, load_config
from leadscore.motions import SENIORITIES
from leadscore.schema import load_dataset
from synthetic import generate

OUT = Path(__file__).resolve().parent / "out"
SIZES = {"b2c": dict(n=230_000, scale=1.0), "b2b": dict(n=1_000_000, scale=23.0)}
DAY = pd.Timedelta(days=1)


def _data(motion: str) -> Path:
    folder = OUT / f"{motion}_{SIZES[motion]['n']}"
    if not (folder / "outcomes.parquet").exists():
        generate(motion, SIZES[motion]["n"], 11, folder, scale=SIZES[motion]["scale"])
    return folder


def _peer_b2c(ev: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    ev = ev[(ev["ts"] <= as_of) & (ev["ts"] > as_of - 90 * DAY)]

    def one(g: pd.DataFrame) -> pd.Series:
        age = as_of - g["ts"]
        last_sess = g.groupby("session_id")["ts"].max()
        buys = g.loc[(g["type"] == "purchase") & (age < 30 * DAY), "ts"]
        after = g[(age < 30 * DAY) & (g["ts"] > (buys.max() if len(buys) else pd.Timestamp.min))]
        q = after["quantity"].fillna(1.0)
        adds, rems = after["type"] == "add_to_cart", after["type"] == "remove_from_cart"
        items = max(q[adds].sum() - q[rems].sum(), 0.0)
        val = after["price"].fillna(0.0) * q
        return pd.Series(
            {
                "behavior_recency_days": age.min() / DAY,
                "behavior_sessions_7d": float((as_of - last_sess < 7 * DAY).sum()),
                "behavior_sessions_30d": float((as_of - last_sess < 30 * DAY).sum()),
                "behavior_product_views_7d": float(((g["type"] == "product_view") & (age < 7 * DAY)).sum()),
                "behavior_searches_7d": float(((g["type"] == "search") & (age < 7 * DAY)).sum()),
                "cart_items": items,
                "cart_value": max(val[adds].sum() - val[rems].sum(), 0.0) if items > 0 else 0.0,
            }
        )

    return ev.groupby("customer_id").apply(one, include_groups=False)


def _peer_b2b(ev: pd.DataFrame, as_of: pd.Timestamp, half_life: float) -> pd.DataFrame:
    ev = ev[(ev["ts"] <= as_of) & (ev["ts"] > as_of - 90 * DAY) & ev["lead_id"].notna()]
    hi_types = {"solution_page", "pricing_page", "demo_request", "trial_signup", "third_party_intent"}

    def one(g: pd.DataFrame) -> pd.Series:
        age = (as_of - g["ts"]) / DAY
        hi = g["type"].isin(hi_types)
        c7, c35 = float((hi & (age < 7)).sum()), float((hi & (age < 35)).sum())
        return pd.Series(
            {
                "intent_lead_hi_7d": c7,
                "intent_lead_hi_30d": float((hi & (age < 30)).sum()),
                "intent_lead_pricing_7d": float(((g["type"] == "pricing_page") & (age < 7)).sum()),
                "intent_lead_decayed": float(np.exp2(-age[hi] / half_life).sum()),
                "intent_lead_surge": (c7 + 1) / ((c35 - c7) / 4 + 1),
                "intent_lead_days_since_hi": float(age[hi].min()) if hi.any() else np.nan,
            }
        )

    return ev.groupby("lead_id").apply(one, include_groups=False)


# Every B2B feature of the set (fit, intent at lead and account level, the buying group), point in time, the
# way features/compute.py defines them, as one SQL query. ``$clean``: the same cleaning as ``prepare`` first (a
# repeated event id counts once); unknown leads and leads created after as-of drop out in the join either way.
DUCKDB_B2B = """
WITH
l AS (  -- the leads that exist at as-of
  SELECT lead_id, account_id, buying_role, seniority, email_domain_type FROM leads WHERE epoch(created_at) <= $as_of
),
ev AS (  -- the 90 days up to as-of; an event's account is its lead's account; events of later leads left out
  SELECT e.lead_id, coalesce(l.account_id, e.account_id) AS account_id, e.type, e.topic,
         ($as_of - epoch(e.ts)) / 86400.0 AS age,
         list_contains($hi, e.type) AS hi
  FROM ev_in e LEFT JOIN l ON e.lead_id = l.lead_id
  WHERE epoch(e.ts) <= $as_of AND epoch(e.ts) > $as_of - 90 * 86400 AND (e.lead_id IS NULL OR l.lead_id IS NOT NULL)
),
li AS (  -- per lead: intent and the events that engage
  SELECT lead_id,
         count(*) FILTER (hi AND age < 7) AS c7, count(*) FILTER (hi AND age < 30) AS c30,
         count(*) FILTER (hi) AS c90, count(*) FILTER (hi AND age < 35) AS c35,
         count(*) FILTER (type = 'pricing_page' AND age < 7) AS p7,
         count(*) FILTER (type IN ('demo_request', 'trial_signup') AND age < 30) AS d30,
         sum(pow(2, -age / $half_life)) FILTER (hi) AS decayed, min(age) FILTER (hi) AS since,
         count(*) FILTER (type <> 'email_open' AND age < 30) AS engaged_events
  FROM ev WHERE lead_id IS NOT NULL GROUP BY lead_id
),
ai AS (  -- per account: intent, topics, meetings
  SELECT account_id,
         count(*) FILTER (hi AND age < 7) AS c7, count(*) FILTER (hi AND age < 30) AS c30,
         count(*) FILTER (hi AND age < 35) AS c35, sum(pow(2, -age / $half_life)) FILTER (hi) AS decayed,
         min(age) FILTER (hi) AS since, count(DISTINCT topic) AS topics,
         count(*) FILTER (type = 'meeting_booked') AS meetings
  FROM ev GROUP BY account_id
),
le AS (
  SELECT l.*, coalesce(li.engaged_events, 0) AS lead_ev,
         list_position($seniorities, l.seniority) - 1 AS sen
  FROM l LEFT JOIN li USING (lead_id)
),
ae AS (  -- per account: the buying group engaged in the last 30 days
  SELECT account_id, count(*) FILTER (lead_ev > 0) AS contacts,
         count(DISTINCT buying_role) FILTER (lead_ev > 0 AND buying_role <> 'unknown') AS roles,
         bool_or(lead_ev > 0 AND buying_role = 'economic_buyer') AS eb, bool_or(lead_ev > 0 AND buying_role = 'champion') AS ch,
         count(DISTINCT buying_role) FILTER (lead_ev > 0 AND list_contains($required, buying_role))
           / greatest(len($required), 1)::DOUBLE AS coverage,
         max(sen) FILTER (lead_ev > 0) AS max_sen, sum(lead_ev) AS acct_ev
  FROM le GROUP BY account_id
),
fit AS (
  SELECT account_id, industry,
         CASE WHEN industry IS NULL THEN NULL ELSE list_contains($industries, industry)::DOUBLE END AS ind,
         CASE WHEN employee_count IS NULL OR isnan(employee_count) THEN NULL ELSE (employee_count BETWEEN $emp_lo AND $emp_hi)::DOUBLE END AS size,
         CASE WHEN annual_revenue IS NULL OR isnan(annual_revenue) THEN NULL ELSE (annual_revenue BETWEEN $rev_lo AND $rev_hi)::DOUBLE END AS rev,
         CASE WHEN region IS NULL THEN NULL ELSE list_contains($regions, region)::DOUBLE END AS reg,
         log10(greatest(employee_count, 1.0)) AS log_emp
  FROM accounts
)
SELECT le.lead_id,
  fit.ind AS fit_industry_match, fit.size AS fit_size_match, fit.rev AS fit_revenue_match, fit.reg AS fit_region_match,
  (coalesce(fit.ind, 0) + coalesce(fit.size, 0) + coalesce(fit.rev, 0) + coalesce(fit.reg, 0))
    / nullif((fit.ind IS NOT NULL)::INT + (fit.size IS NOT NULL)::INT + (fit.rev IS NOT NULL)::INT + (fit.reg IS NOT NULL)::INT, 0) AS fit_icp_score,
  fit.log_emp AS fit_log_employees, (le.email_domain_type = 'business')::DOUBLE AS fit_business_email,
  le.sen::DOUBLE AS fit_seniority, le.buying_role AS fit_buying_role, fit.industry AS fit_industry,
  coalesce(li.c7, 0)::DOUBLE AS intent_lead_hi_7d, coalesce(li.c30, 0)::DOUBLE AS intent_lead_hi_30d,
  coalesce(li.c90, 0)::DOUBLE AS intent_lead_hi_90d, coalesce(li.p7, 0)::DOUBLE AS intent_lead_pricing_7d,
  coalesce(li.d30, 0)::DOUBLE AS intent_lead_demo_30d, coalesce(li.decayed, 0) AS intent_lead_decayed,
  (coalesce(li.c7, 0) + 1) / ((coalesce(li.c35, 0) - coalesce(li.c7, 0)) / 4.0 + 1) AS intent_lead_surge,
  li.since AS intent_lead_days_since_hi,
  coalesce(ai.c30, 0)::DOUBLE AS intent_acct_hi_30d, coalesce(ai.decayed, 0) AS intent_acct_decayed,
  (coalesce(ai.c7, 0) + 1) / ((coalesce(ai.c35, 0) - coalesce(ai.c7, 0)) / 4.0 + 1) AS intent_acct_surge,
  ai.since AS intent_acct_days_since_hi, coalesce(ai.topics, 0)::DOUBLE AS intent_acct_topics_90d,
  ae.contacts::DOUBLE AS engagement_contacts_30d, ae.roles::DOUBLE AS engagement_roles_30d,
  ae.eb::DOUBLE AS engagement_economic_buyer, ae.ch::DOUBLE AS engagement_champion,
  ae.coverage AS engagement_role_coverage, ae.max_sen::DOUBLE AS engagement_max_seniority,
  CASE WHEN ae.acct_ev > 0 THEN le.lead_ev / ae.acct_ev ELSE 0.0 END AS engagement_lead_share,
  le.lead_ev::DOUBLE AS engagement_lead_events_30d, coalesce(ai.meetings, 0)::DOUBLE AS engagement_meetings_90d
FROM le LEFT JOIN li USING (lead_id) LEFT JOIN ai USING (account_id) LEFT JOIN ae USING (account_id)
     LEFT JOIN fit USING (account_id)
"""
EVENTS_AS_IS = "ev_in AS (SELECT * FROM events),"
EVENTS_DEDUPED = "ev_in AS (SELECT * FROM events QUALIFY row_number() OVER (PARTITION BY event_id) = 1),"


NAN_AS_MISSING = {"accounts": ("employee_count", "annual_revenue")}


def _duckdb_params(as_of: int, conf: MotionConfig) -> dict:
    icp = conf.icp
    return {"as_of": as_of, "half_life": conf.intent_half_life_days, "hi": list(HIGH_INTENT_TYPES),
            "industries": icp.industries, "emp_lo": icp.employee_band[0], "emp_hi": min(icp.employee_band[1], 1e300),
            "rev_lo": icp.revenue_band[0], "rev_hi": min(icp.revenue_band[1], 1e300), "regions": icp.regions,
            "seniorities": list(SENIORITIES), "required": list(conf.required_roles)}  # fmt: skip


def _duckdb_b2b(sources: dict[str, Any], as_of: int, conf: MotionConfig, clean: bool) -> pd.DataFrame:
    """Every B2B feature in DuckDB SQL (2 threads, as the machine has 2 cores), over ``sources``: the tables
    in memory (Arrow, as loaded) or the Parquet files (paths: DuckDB reads them itself)."""
    import duckdb

    con = duckdb.connect(config={"threads": 2})
    for name, src in sources.items():
        if isinstance(src, Path):
            # A NaN in a Parquet float column is a missing value, as pandas reads it. (DuckDB 2.0 folds isnan()
            # to false on a Parquet column whose statistics hold no NaN, so the view reads it through text.)
            fix = [
                f"CASE WHEN {c}::VARCHAR = 'nan' THEN NULL ELSE {c} END AS {c}"
                for c in NAN_AS_MISSING.get(name, ())
            ]
            select = f"SELECT * REPLACE ({', '.join(fix)})" if fix else "SELECT *"
            con.execute(f"CREATE VIEW {name} AS {select} FROM read_parquet('{src}')")
        else:
            con.register(name, src)
    sql = DUCKDB_B2B.replace("WITH\n", "WITH\n" + (EVENTS_DEDUPED if clean else EVENTS_AS_IS) + "\n", 1)
    return con.execute(sql, _duckdb_params(as_of, conf)).df().set_index("lead_id")


def _best_of(n: int, f: Any) -> tuple[float, Any]:
    runs, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = f()
        runs.append(time.perf_counter() - t0)
    return min(runs), out


def _check_equal(ours: pd.DataFrame, db: pd.DataFrame) -> list[str]:
    """Every feature of ours equal to DuckDB's on every lead (numbers to 1e-9, categories exactly)."""
    mine = ours.set_index("lead_id").drop(columns=["account_id", "as_of"])
    assert len(db) == len(mine) and set(db.columns) == set(mine.columns), (
        len(db),
        set(db.columns) ^ set(mine.columns),
    )
    db = db.loc[mine.index]
    for c in mine.columns:
        a, b = mine[c].to_numpy(), db[c].to_numpy()
        if a.dtype == object:
            same = [x == y or (_missing(x) and _missing(y)) for x, y in zip(a, b, strict=True)]
            assert all(same), (c, int(len(same) - sum(same)))
        else:
            np.testing.assert_allclose(a, b.astype(np.float64), rtol=1e-9, atol=1e-9, err_msg=c)
    return list(mine.columns)


def _missing(v: Any) -> bool:
    return v is None or v != v


def run(motion: str, peer_share: float = 0.02) -> dict:
    folder = _data(motion)
    conf = load_config(motion)
    t0 = time.perf_counter()
    tables = load_dataset(folder, motion)
    t_load = time.perf_counter() - t0
    n_events = len(tables["events"])
    t0 = time.perf_counter()
    p = prepare(motion, tables)
    t_prepare = time.perf_counter() - t0
    as_of = latest_time(p) - 7 * 86400
    ours = features_as_of(p, as_of, conf)
    t_ours = time.perf_counter() - t0
    # A training set is several as-of snapshots of one prepared data set: what one more snapshot costs.
    t0 = time.perf_counter()
    features_as_of(p, as_of - 30 * 86400, conf)
    t_snapshot = time.perf_counter() - t0
    # The peer, on a sample of entities (it would take hours on all of them).
    id_col = "customer_id" if motion == "b2c" else "lead_id"
    rng = np.random.default_rng(0)
    ids = ours[id_col].to_numpy()
    sample = set(rng.choice(ids, max(1, int(len(ids) * peer_share)), replace=False))
    ev = tables["events"]
    sub = ev[ev[id_col].isin(sample)]
    ts = pd.Timestamp(as_of, unit="s")
    t0 = time.perf_counter()
    peer = _peer_b2c(sub, ts) if motion == "b2c" else _peer_b2b(sub, ts, conf.intent_half_life_days)
    t_peer = time.perf_counter() - t0
    mine = ours.set_index(id_col).loc[peer.index, peer.columns]
    np.testing.assert_allclose(mine.to_numpy(float), peer.to_numpy(float), rtol=1e-9, atol=1e-9)
    ours_rate = n_events / t_ours
    peak = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    )  # ours and the pandas peer (before DuckDB's)
    peer_rate = len(sub) / t_peer
    sql = {}
    if motion == "b2b":  # DuckDB on every lead, best of 3, from the same loaded tables and from the files
        import pyarrow as pa

        arrow = {
            t: pa.table({c: pa.array(tables[t][c].array, from_pandas=True) for c in tables[t].columns})
            for t in ("accounts", "leads", "events")
        }
        t_db, db = _best_of(3, lambda: _duckdb_b2b(arrow, as_of, conf, clean=True))
        checked = _check_equal(ours, db)
        t_plain, db = _best_of(3, lambda: _duckdb_b2b(arrow, as_of, conf, clean=False))
        _check_equal(ours, db)
        files = {t: folder / f"{t}.parquet" for t in arrow}
        t_files, _ = _best_of(3, lambda: _duckdb_b2b(files, as_of, conf, clean=True))
        n = conf.snapshots.count
        sql = {"duckdb_s": round(t_db, 2), "duckdb_without_cleaning_s": round(t_plain, 2),
               "duckdb_from_parquet_s": round(t_files, 2), "duckdb_features_checked_equal": len(checked),
               "duckdb_leads_checked": len(db), "prepare_s": round(t_prepare, 2),
               "ratio_vs_duckdb": round(t_db / t_ours, 2),
               "ratio_vs_duckdb_without_cleaning": round(t_plain / t_ours, 2),
               "ratio_vs_duckdb_from_parquet_with_our_load": round(t_files / (t_load + t_ours), 2),
               "ratio_vs_duckdb_per_snapshot": round(t_db / t_snapshot, 2),
               "training_set_snapshots": n,
               "ratio_vs_duckdb_training_set": round(n * t_db / (t_prepare + n * t_snapshot), 2)}  # fmt: skip
    return {
        "motion": motion,
        "entities": len(ours),
        "events": n_events,
        "load_s": round(t_load, 2),
        "features_s": round(t_ours, 2),
        "snapshot_s": round(t_snapshot, 2),
        "events_per_s": round(ours_rate),
        "rows_per_s": round(len(ours) / t_ours),
        "peer_events": len(sub),
        "peer_s": round(t_peer, 2),
        "peer_events_per_s": round(peer_rate),
        "speedup_vs_pandas_apply": round(ours_rate / peer_rate, 1),
        "features": ours.shape[1] - 3,
        "peer_features_checked_equal": list(peer.columns),
        "peak_rss_gb": round(peak, 2),
    } | sql


def online_cpu(n: int = 2000) -> dict:
    """CPU per lead on the online path (payload + store → features), B2B and B2C."""
    import tempfile

    from features.materialize import materialize
    from features.online_frame import OnlineFeatures
    from features.online_store import SQLStore

    out = {}
    for motion in ("b2b", "b2c"):
        folder = OUT / f"{motion}_online"
        if not (folder / "outcomes.parquet").exists():
            generate(motion, 5000, 3, folder)
        conf = load_config(motion)
        tables = load_dataset(folder, motion)
        p = prepare(motion, tables)
        as_of = latest_time(p)
        store = SQLStore(f"sqlite:///{Path(tempfile.mkdtemp()) / 'o.db'}")
        materialize(p, as_of, conf, store)
        online = OnlineFeatures(conf, store)
        key = "customers" if motion == "b2c" else "leads"
        recs = tables[key].head(n).to_dict("records")
        payloads = []
        for r in recs:
            r = {
                k: (v.isoformat() if isinstance(v, pd.Timestamp) else (None if pd.isna(v) else v))
                for k, v in r.items()
            }
            ev = [
                {"event_id": f"r{i}", "ts": as_of - 3600 * i, "type": "page_view", "session_id": "s"}
                for i in range(5)
            ]
            payloads.append({("customer" if motion == "b2c" else "lead"): r, "events": ev})
        t0 = time.process_time()
        for pl in payloads:
            online.compute(pl, as_of)
        out[motion] = round((time.process_time() - t0) / len(payloads) * 1e6)
    return {"online_cpu_us_per_lead": out}


if __name__ == "__main__":
    arg = sys.argv[1]
    print(json.dumps(online_cpu() if arg == "online" else run(arg)))
