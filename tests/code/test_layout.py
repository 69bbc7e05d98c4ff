"""The layout keeps one direction of flow: each package imports only those below it, and nothing imports the CLI.

Read from the code's own import statements (every one, inside functions too), so a lazy import counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("leadscore", "synthetic", "features", "model", "training", "serving", "feedback", "cli")
# What each package may import of the project's own packages (besides itself).
ALLOWED = {
    "leadscore": set(),
    "synthetic": {"leadscore"},
    "features": {"leadscore"},
    "model": {"leadscore", "features"},
    "training": {"leadscore", "features", "model"},
    "serving": {"leadscore", "features", "model"},
    "feedback": {"leadscore", "features", "model", "training", "serving"},
    "cli": {"leadscore", "synthetic", "features", "model", "training", "serving", "feedback"},
}
MAX_LINES = 400


def _imports(path: Path) -> set[str]:
    """The project packages a file imports (absolute imports; the project uses no relative ones)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            found.add((node.module or "").split(".")[0])
    return found & {*PACKAGES, "tests", "bench"}


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_lies_below_it(package):
    wrong = {
        f"{p.relative_to(ROOT)} imports {other}"
        for p in _sources(package)
        for other in _imports(p) - ALLOWED[package] - {package}
    }
    assert not wrong, sorted(wrong)


def test_the_rules_forbid_what_the_design_forbids():
    assert "training" not in ALLOWED["serving"]  # serving never imports training
    assert not ALLOWED["features"] & {"model", "training"}  # features imports neither
    assert not ALLOWED["leadscore"]  # the core imports no stage
    assert all("cli" not in allowed for allowed in ALLOWED.values())  # nothing imports the CLI


def test_the_layout_rules_see_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from training.fit import fit_and_evaluate\n    import cli.app\n")
    assert _imports(bad) == {"training", "cli"}


def test_no_source_file_is_over_the_size_limit():
    long = {
        str(p.relative_to(ROOT)): n
        for pkg in PACKAGES
        for p in _sources(pkg)
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long


def test_no_test_module_imports_another():
    wrong = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py") if "tests" in _imports(p)]
    assert not wrong
