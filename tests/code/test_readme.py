"""The README is true: every ``leadscore`` command and option it shows exists (and its help runs), every
``make`` target is in the Makefile, every URL path is a route the service serves, every ``LEADSCORE_*`` variable
is a setting, and every file it points to is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from cli.app import app
from leadscore.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
ROOT_COMMAND = typer.main.get_command(app)


def _snippets() -> list[str]:
    """Shell lines of the fenced bash blocks and every inline code span."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [ln.split("  #")[0].strip() for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", README, flags=re.S))
    return [s for s in lines + spans if s]


def _leadscore_calls() -> list[list[str]]:
    """Each ``leadscore …`` call as words; ``models list | promote NAME`` is two calls of ``leadscore models``."""
    calls = []
    for s in _snippets():
        if not s.startswith("leadscore "):
            continue
        first, *alternatives = s.split(" | ")
        words = first.split()
        calls.append(words)
        group = words[:2]
        calls += [group + alt.split() for alt in alternatives]
    return calls


def _resolve(words: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The command the words name, its path, and the options given."""
    cmd, path = ROOT_COMMAND, ["leadscore"]
    rest = words[1:]
    root_options = {o for p in cmd.params for o in p.opts}
    while rest and rest[0] in root_options:  # leadscore --json train …
        path.append(rest.pop(0))
    while rest and hasattr(cmd, "commands") and rest[0] in cmd.commands:
        cmd = cmd.commands[rest[0]]
        path.append(rest.pop(0))
    options = [re.sub(r"[\[\]]|=.*", "", w) for w in rest if w.lstrip("[").startswith("--")]
    return cmd, path, options


CALLS = _leadscore_calls()


def test_the_readme_shows_commands():
    assert len(CALLS) >= 15 and {tuple(_resolve(c)[1]) for c in CALLS} >= {
        ("leadscore", "train"), ("leadscore", "score"), ("leadscore", "serve"), ("leadscore", "keys", "create"),
    }  # fmt: skip


@pytest.mark.parametrize("words", CALLS, ids=[" ".join(c)[:60] for c in CALLS])
def test_each_command_and_option_exists_and_its_help_runs(words):
    cmd, path, options = _resolve(words)
    if path == ["leadscore", "--version"]:
        assert CliRunner().invoke(app, ["--version"]).output.startswith("leadscore ")
        return
    assert not hasattr(cmd, "commands"), f"{' '.join(words)}: no such command under {' '.join(path)}"
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    missing = [o for o in options if o not in known]
    assert not missing, f"{' '.join(path)} has no option {missing}"
    r = CliRunner().invoke(app, [*path[1:], "--help"])
    assert r.exit_code == 0 and "Usage" in r.output, r.output


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    shown = {m.group(1) for s in _snippets() for m in re.finditer(r"\bmake ([a-z][a-z-]*)", s)}
    assert shown and shown <= targets, shown - targets


def test_urls_are_served_routes():
    from serving.service import LeadScore

    routes = {api.route for api in LeadScore.apis.values()} | {
        "/",
        "/docs.json",
        "/livez",
        "/readyz",
        "/metrics",
    }
    shown = set(re.findall(r"http://127\.0\.0\.1:3000(/[\w./-]*)", README))
    assert shown and shown <= routes, shown - routes
    assert "/docs" not in {s.rstrip("/") for s in shown if s != "/docs.json"}


def test_variables_are_settings_and_files_exist():
    fields = {Settings.variable(f) for f in Settings.model_fields}
    shown = set(re.findall(r"\b(LEADSCORE_[A-Z_]+)\b", README))
    assert shown and shown <= fields, shown - fields
    files = set(
        re.findall(
            r"(?<![\w/.])((?:serving|conf|tests|bench|notebooks)/[\w./-]+\.(?:json|yaml|py|ipynb))", README
        )
    )
    assert files and all((ROOT / f).exists() for f in files), [f for f in files if not (ROOT / f).exists()]
