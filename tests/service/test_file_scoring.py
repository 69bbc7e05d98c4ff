"""Batch scoring in chunks gives what one chunk gives: the same scores, reasons and routes, every row journaled
once, and the output in place only when it is complete."""

from __future__ import annotations

import pandas as pd
import pytest

import serving.batch_parts as batch_parts
import serving.file_scoring as fs
from leadscore import score_rows
from leadscore.settings import Settings
from leadscore.store import Store

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_chunks_change_nothing_but_memory(trained, b2c_dir, tmp_path, monkeypatch, suffix):
    store = Store(f"sqlite:///{tmp_path / 'log.db'}")
    whole = fs.score_file("b2c@champion", b2c_dir, tmp_path / f"whole{suffix}", store=store)
    monkeypatch.setattr(fs, "CHUNK", 997)
    parts = fs.score_file("b2c@champion", b2c_dir, tmp_path / f"parts{suffix}", store=store)
    pd.testing.assert_frame_equal(whole, parts)
    read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
    on_disk = read(tmp_path / f"parts{suffix}")
    assert len(on_disk) == len(parts) > 2 * 997 and list(on_disk.columns) == list(parts.columns)
    assert (on_disk["customer_id"].astype(str) == parts["customer_id"].astype(str)).all()
    assert not list(tmp_path.glob(".*partial"))
    assert parts["reasons"].str.len().gt(0).mean() > 0.9 and parts["route"].nunique() > 1
    logged = score_rows.read(store, "b2c")
    assert len(logged) == 2 * len(parts)  # each run's every row, once
    first = pd.DataFrame(logged[len(parts) :]).set_index("entity_id").loc[parts["customer_id"].astype(str)]
    assert (first["score"].to_numpy() == parts["score"].to_numpy()).all()
    feats = first["features"].iloc[0]
    assert "cart_value" in feats and all(not isinstance(v, float) or v == v for v in feats.values())


def test_a_failed_run_leaves_no_partial_output(trained, b2c_dir, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(batch_parts, "route_names", boom)  # a chunk fails midway
    with pytest.raises(RuntimeError, match="disk full"):
        fs.score_file(
            "b2c@champion", b2c_dir, tmp_path / "out.parquet", store=Store(Settings.load().store_url)
        )
    assert not (tmp_path / "out.parquet").exists() and not list(tmp_path.glob(".*partial"))


def test_a_run_larger_than_the_journal_cap_ships_as_it_goes(trained, b2c_dir, tmp_path, monkeypatch):
    """The score log of a long run is shipped chunk by chunk, so it never fills the journal's cap (a nightly
    run of 1M leads writes hundreds of MB of score batches)."""
    monkeypatch.setenv("LEADSCORE_JOURNAL_MAX_MB", "0.5")
    monkeypatch.setattr(fs, "CHUNK", 500)
    store = Store(f"sqlite:///{tmp_path / 'log.db'}")
    r = fs.score_file("b2c@champion", b2c_dir, tmp_path / "out.parquet", store=store)
    size = sum(len(x["columns"]) for x in store.query("SELECT columns FROM score_batches"))
    assert size > 2 * 0.5 * 2**20 and len(score_rows.read(store, "b2c")) == len(r)  # twice the cap
