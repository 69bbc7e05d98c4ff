"""The synthetic generator: valid tables, a known story, determinism, scale."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app
from leadscore.schema import load_dataset
from synthetic import generate, read_truth
from synthetic.b2b import generate_b2b


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


def test_chunks_join_into_one_data_set(tmp_path):
    """Large data sets are written a chunk of leads at a time (accounts kept whole): the chunks must join into one
    valid data set. (The generator's speed and memory at 1M leads and 50M events are figures of ``make bench``,
    part ``batch-large``, which generates them.)"""
    w = generate_b2b(30_000, 1, tmp_path, events_per_lead=50, chunk_leads=10_000)
    t = load_dataset(tmp_path, "b2b")
    assert w.tables["leads"] == len(t["leads"]) == 30_000
    assert len(t["events"]) == w.tables["events"] >= 40 * 30_000
    assert t["events"]["event_id"].is_unique and t["leads"]["lead_id"].is_unique
    with_lead = t["events"]["lead_id"].dropna()
    assert with_lead.isin(t["leads"]["lead_id"]).all()
    # an event's account is its lead's account, across every chunk boundary
    lead_account = t["leads"].set_index("lead_id")["account_id"]
    ev = t["events"].dropna(subset=["lead_id"])
    assert (ev["account_id"].to_numpy() == lead_account.loc[ev["lead_id"]].to_numpy()).all()
