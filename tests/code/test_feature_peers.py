"""The benchmark's SQL peer computes the same features: every B2B feature, every lead, in DuckDB, equal to ours
(from the loaded tables and from the Parquet files). The bench checks it again on its own data; this keeps the
peer honest between bench runs, and shows why its timed form counts a repeated event id once, as ``prepare`` does:
without that step it gives other values on an export that repeats events."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from bench.features import _check_equal, _duckdb_b2b
from features.historical import features_as_of, latest_time
from features.prepare import prepare
from leadscore.config import load_config
from leadscore.schema import load_dataset


def test_the_duckdb_peer_gives_every_b2b_feature_as_ours(b2b_dir):
    conf = load_config("b2b")
    tables = load_dataset(b2b_dir, "b2b")
    p = prepare("b2b", tables)
    names = ("accounts", "leads", "events")
    arrow = {
        t: pa.table({c: pa.array(tables[t][c].array, from_pandas=True) for c in tables[t]}) for t in names
    }
    for as_of in (latest_time(p), latest_time(p) - 45 * 86400):
        ours = features_as_of(p, as_of, conf)
        for sources, clean in (
            (arrow, True),
            (arrow, False),
            ({t: b2b_dir / f"{t}.parquet" for t in names}, True),
        ):
            checked = _check_equal(ours, _duckdb_b2b(sources, as_of, conf, clean))
            assert len(checked) == 32 and "engagement_role_coverage" in checked and "fit_icp_score" in checked


def test_without_the_cleaning_the_peer_counts_a_repeated_event_twice(b2b_dir):
    conf = load_config("b2b")
    tables = load_dataset(b2b_dir, "b2b")
    ev = tables["events"]
    as_of = int(ev["ts"].max().timestamp())
    recent = ev[
        (ev["type"] == "pricing_page")
        & ev["lead_id"].notna()
        & (ev["ts"] > ev["ts"].max() - pd.Timedelta(days=6))
    ]
    tables["events"] = pd.concat([ev, recent.head(20)], ignore_index=True)  # sent twice, as exports do
    ours = features_as_of(prepare("b2b", tables), as_of, conf)
    arrow = {t: pa.table({c: pa.array(tables[t][c].array, from_pandas=True) for c in tables[t]})
             for t in ("accounts", "leads", "events")}  # fmt: skip
    assert len(_check_equal(ours, _duckdb_b2b(arrow, as_of, conf, clean=True))) == 32
    with pytest.raises(AssertionError, match="intent_lead_hi_7d|intent_lead_pricing_7d"):
        _check_equal(ours, _duckdb_b2b(arrow, as_of, conf, clean=False))
