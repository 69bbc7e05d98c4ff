"""The notebooks run top to bottom against the package (they hold no logic of their own)."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from leadscore.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "name", ["01-explore-features", "02-train-and-evaluate", "03-feedback-and-monitoring"]
)
def test_notebook_executes(name, tmp_path, monkeypatch):
    monkeypatch.setenv("LEADSCORE_NB_DIR", str(tmp_path))
    monkeypatch.setenv("LEADSCORE_NB_LEADS", "3000")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("LEADSCORE_HOME", str(tmp_path / "home"))
    nb = nbformat.read(PROJECT_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(PROJECT_ROOT)}}
    ).execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
