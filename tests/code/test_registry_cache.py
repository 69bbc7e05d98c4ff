"""Serving's local copy of a model version is placed by one atomic rename: a worker that places its download
second keeps the copy already there (two workers starting on one new version raced to 'Directory not empty', and
the loser served without the model), and a copy without ``MLmodel`` is replaced."""

from __future__ import annotations

from pathlib import Path

from model.registry import place


def _copy(at: Path, tag: str, complete: bool = True) -> Path:
    at.mkdir(parents=True)
    if complete:
        (at / "MLmodel").write_text(tag)
    (at / "model.pkl").write_text(tag)
    return at


def test_a_download_is_placed_where_no_copy_is(tmp_path):
    local = tmp_path / "b2c" / "3"
    local.parent.mkdir()
    place(_copy(tmp_path / "tmp" / "a", "mine"), local)
    assert (local / "MLmodel").read_text() == "mine"


def test_a_copy_placed_first_by_another_worker_is_kept(tmp_path):
    local = _copy(tmp_path / "b2c" / "3", "theirs")
    src = _copy(tmp_path / "tmp" / "a", "mine")
    place(src, local)  # no error: the version is in place
    assert (local / "MLmodel").read_text() == "theirs" and (local / "model.pkl").read_text() == "theirs"
    assert sorted(p.name for p in local.parent.iterdir()) == ["3"]


def test_a_copy_without_its_mlmodel_is_replaced(tmp_path):
    local = _copy(tmp_path / "b2c" / "3", "partial", complete=False)
    place(_copy(tmp_path / "tmp" / "a", "mine"), local)
    assert (local / "MLmodel").read_text() == "mine" and (local / "model.pkl").read_text() == "mine"
    assert sorted(p.name for p in local.parent.iterdir()) == ["3"]  # the partial copy is gone, not set aside
