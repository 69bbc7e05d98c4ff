"""The CLI fits its ecosystem: help for every option, ``--version``, motions as choices with one error, ``--json``
summaries, one-line user errors (exit 2) against tracebacks for bugs (and ``--debug``), stage lines and no
fragments when the output is a log file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.app import app
from leadscore.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _commands(cmd, path):
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, [*path, name])


def test_every_option_and_argument_has_help():
    missing = [
        (" ".join(path), p.name)
        for path, cmd in _commands(typer.main.get_command(app), ["leadscore"])
        for p in cmd.params
        if not getattr(p, "help", None)
    ]
    assert not missing, missing


def test_version_and_motion_choices_with_one_error():
    from importlib.metadata import version

    assert run("--version").output == f"leadscore {version('leadscore')}\n"
    errors = [run(*cmd) for cmd in (("generate", "b2x"), ("train", "b2x", "--data", "x"),
                                    ("feedback", "report", "b2x", "--out", "x"))]  # fmt: skip
    for r in errors:
        text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.output).split())  # rich's error box, unwrapped
        assert r.exit_code == 2 and "'b2x' is not one of 'b2b', 'b2c', 'hybrid'" in text, r.output
    assert "b2b" in run("generate", "--help").output  # the choices are in the help


def test_user_errors_are_one_line_and_bugs_show_their_traceback(tmp_path, monkeypatch):
    r = run("train", "b2b", "--data", tmp_path / "nowhere")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and r.output.startswith("error:"), r.output
    r = run("--debug", "train", "b2b", "--data", tmp_path / "nowhere")
    assert r.exit_code == 1 and isinstance(r.exception, FileNotFoundError | UserError)  # with its traceback
    assert not r.output.startswith("error:")

    def bug(*a, **k):
        raise ValueError("an internal bug")

    import synthetic

    monkeypatch.setattr(synthetic, "generate", bug)
    r = run("generate", "b2b", "--leads", "10", "--out", tmp_path / "g")
    assert r.exit_code == 1 and isinstance(r.exception, ValueError)  # not dressed up as the user's mistake


def _leadscore(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command with its output going to files (a pipe), as under cron or a scheduler."""
    env = os.environ | {"COLUMNS": "40"}  # a narrow terminal setting must not wrap a log
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_a_job_reads_well_in_a_log_and_as_json(tmp_path):
    data = tmp_path / "some-rather-long-folder-name-for-the-generated-b2b-tables"
    r = _leadscore("generate", "b2b", "--leads", "400", "--out", str(data), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert str(data) in r.stdout  # the title on one line, not cut into fragments
    assert all(len(line) > 3 for line in r.stdout.splitlines() if line.strip()), r.stdout
    r = _leadscore("--json", "features", "b2b", "--data", str(data), "--out", str(tmp_path / "f.parquet"),
                   cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)  # one JSON object, nothing else on stdout
    assert body["entities"] > 0 and body["features"] > 10 and "features" in body["title"]
    stages = [line for line in r.stderr.splitlines() if line.startswith("✓")]
    assert [s.split(" (")[0] for s in stages] == ["✓ reading the canonical tables", "✓ point-in-time features",
                                                  f"✓ writing {tmp_path / 'f.parquet'}"]  # fmt: skip


def test_a_failed_stage_is_not_reported_done(caplog):
    from leadscore.progress import steps

    caplog.set_level("INFO", logger="leadscore.progress")
    with pytest.raises(RuntimeError), steps() as step:
        step("reading")
        step("scoring")
        raise RuntimeError("boom")
    done = [r.stage for r in caplog.records if getattr(r, "state", None) == "done"]
    assert done == ["reading"]
