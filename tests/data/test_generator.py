"""The synthetic generator: valid tables, a known story, determinism, scale."""

from __future__ import annotations

import hashlib
import resource
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app
from leadscore.schema import load_dataset
from synthetic import generate, read_truth


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


@pytest.mark.parametrize("motion", ["b2b", "b2c"])
def test_same_seed_same_bytes_other_seed_other_data(motion, tmp_path):
    generate(motion, 2500, 3, tmp_path / "a")
    generate(motion, 2500, 3, tmp_path / "b")
    generate(motion, 2500, 4, tmp_path / "c")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a")["events.parquet"] != _digest(tmp_path / "c")["events.parquet"]


def test_b2b_tables_are_valid_and_tell_the_story(b2b_dir):
    t = load_dataset(b2b_dir, "b2b")
    assert set(t) == {"accounts", "leads", "events", "outcomes"}
    assert t["events"]["lead_id"].isna().any()  # account-level intent
    assert (t["events"].loc[t["events"]["type"] == "third_party_intent", "topic"].notna()).all()
    truth = read_truth(b2b_dir)
    assert 0.05 <= truth["won"].mean() <= 0.15
    assert not t["events"]["ts"].is_monotonic_increasing  # late-arriving events
    assert t["accounts"]["annual_revenue"].isna().any()  # missing values
    # Deal value grows with account size; cycles are long.
    won = t["outcomes"][t["outcomes"]["stage"] == "won"].merge(t["accounts"], on="account_id")
    assert np.corrcoef(np.log(won["employee_count"]), np.log(won["value"]))[0, 1] > 0.5
    cycle = won.merge(t["leads"][["lead_id", "created_at"]], on="lead_id")
    assert (cycle["occurred_at"] - cycle["created_at"]).dt.days.median() > 30


def test_b2c_tables_are_valid_and_tell_the_story(b2c_dir):
    t = load_dataset(b2c_dir, "b2c")
    ev = t["events"]
    assert set(ev["type"]) >= {
        "page_view",
        "product_view",
        "add_to_cart",
        "remove_from_cart",
        "checkout_start",
        "purchase",
        "search",
    }
    weekday = ev["ts"].dt.dayofweek
    per_day = ev.groupby(weekday).size()
    assert per_day[[5, 6]].mean() > per_day[[0, 1, 2, 3, 4]].mean() * 1.2  # weekly seasonality
    assert len(t["orders"]) == int(t["outcomes"]["purchased"].sum())
    returning = ev.groupby("customer_id")["ts"].apply(lambda s: s.dt.date.nunique())
    assert (returning > 1).mean() > 0.3


def test_cli_generate_smoke(tmp_path):
    res = CliRunner().invoke(
        app, ["generate", "b2c", "--leads", "500", "--seed", "1", "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    assert {p.name for p in tmp_path.glob("*.parquet")} >= {
        "customers.parquet",
        "events.parquet",
        "orders.parquet",
        "outcomes.parquet",
    }
    assert (pd.read_parquet(tmp_path / "events.parquet")["ts"].dtype.kind) == "M"
    bad = CliRunner().invoke(app, ["generate", "b2x", "--leads", "5", "--out", str(tmp_path / "x")])
    assert (
        bad.exit_code == 2 and "'b2x' is not one of 'b2b', 'b2c'," in bad.output and "'hybrid'" in bad.output
    )


@pytest.mark.slow
def test_scale_one_million_leads_in_minutes(tmp_path):
    t0 = time.time()
    w = generate("b2b", 1_000_000, 1, tmp_path, scale=50)
    took = time.time() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    assert w.tables["leads"] == 1_000_000
    assert w.tables["events"] >= 40_000_000
    assert took < 300 and peak_gb < 20, (took, peak_gb)
