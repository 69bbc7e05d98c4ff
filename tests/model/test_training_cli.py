"""Training through the CLI: specs, failure paths that register nothing, gated registry, batch scoring."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from leadscore.cli import app
from tests.conftest import SHARED
from training import registry

XED = SHARED / "x_education_leads" / "Leads.csv"
needs_shared = pytest.mark.skipif(not XED.exists(), reason="shared data sets are not beside the repo")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _names() -> set[str]:
    return {m.name for m in registry.client().search_registered_models()}


def _spec(tmp_path, name="xed", **over) -> str:
    spec = {"name": name, "motion": "b2c", "data": str(XED), "id": "Prospect ID",
            "label": {"column": "Converted", "positive": [1]},
            "exclude": ["Lead Number", "Tags", "Lead Quality", "Lead Profile", "Last Activity", "Last Notable Activity",
                        "Asymmetrique Activity Index", "Asymmetrique Profile Index", "Asymmetrique Activity Score",
                        "Asymmetrique Profile Score"],
            "missing_values": ["Select"]} | over
    p = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return str(p)


def test_failure_paths_give_clear_errors_and_register_nothing(tmp_path, trained):
    before = _names()
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    r = run("train", "--spec", tmp_path / "bad.yaml")
    assert r.exit_code == 2 and "not valid YAML" in r.output
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({"name": "x", "motion": "b2c", "lable": {}}))
    r = run("train", "--spec", tmp_path / "typo.yaml")
    assert r.exit_code == 2 and "label" in r.output and "lable" in r.output
    flat = pd.DataFrame({"a": range(300), "b": [i % 7 for i in range(300)], "won": [1] * 20 + [0] * 280})
    flat.to_csv(tmp_path / "flat.csv", index=False)
    base = {"name": "tiny", "motion": "b2b", "data": str(tmp_path / "flat.csv"), "label": {"column": "won", "positive": [1]}}
    (tmp_path / "few.yaml").write_text(yaml.safe_dump(base))
    r = run("train", "--spec", tmp_path / "few.yaml")
    assert r.exit_code == 2 and "only 20 positive rows" in r.output and "at least 100" in r.output
    (tmp_path / "nolabel.yaml").write_text(yaml.safe_dump(base | {"label": {"column": "outcome", "positive": [1]}}))
    r = run("train", "--spec", tmp_path / "nolabel.yaml")
    assert r.exit_code == 2 and "['outcome']" in r.output and "not in the data" in r.output
    (tmp_path / "broken.parquet").write_text("not a parquet file")
    r = run("train", "--spec", tmp_path / "few.yaml", "--data", tmp_path / "broken.parquet")
    assert r.exit_code == 2 and "cannot read" in r.output
    r = run("train", "b2b", "--data", tmp_path / "nowhere")
    assert r.exit_code == 2 and "not found" in r.output
    assert _names() == before


@needs_shared
def test_spec_model_registers_scores_and_is_gated(tmp_path, trained):
    good = _spec(tmp_path)
    r = run("train", "--spec", good)
    assert r.exit_code == 0, r.output
    assert registry.alias_version("xed", "champion") == "1"
    # A worse challenger: only two weak columns left.
    weak = {"Prospect ID", "Converted", "Country", "City"}
    worse = _spec(tmp_path, exclude=[c for c in pd.read_csv(XED, nrows=1).columns if c not in weak
                                     and not c.startswith("Unnamed")])
    assert run("train", "--spec", worse).exit_code == 0
    assert registry.alias_version("xed", "challenger") == "2"
    r = run("models", "promote", "xed")
    assert r.exit_code == 1 and "refused" in r.output and "AUC" in r.output
    assert registry.alias_version("xed", "champion") == "1"
    r = run("models", "promote", "xed", "--force", "--why", "testing the override")
    assert r.exit_code == 0 and registry.alias_version("xed", "champion") == "2"
    r = run("models", "rollback", "xed", "--why", "worse in production")
    assert r.exit_code == 0 and registry.alias_version("xed", "champion") == "1"
    actions = [(a["action"], a["from_version"], a["to_version"]) for a in registry.audit_log("xed")]
    assert actions == [("initial", None, "1"), ("register", None, "2"), ("refused", "1", "1"),
                       ("force-promote", "1", "2"), ("rollback", "2", "1")]
    assert "testing the override" in registry.audit_log("xed")[3]["why"]
    # Batch scoring keeps order and ids and adds the scoring columns.
    out = tmp_path / "scores.csv"
    r = run("score", "--model", "xed@champion", "--data", XED, "--spec", good, "--out", out)
    assert r.exit_code == 0, r.output
    scored, raw = pd.read_csv(out), pd.read_csv(XED)
    assert scored["Prospect ID"].tolist() == raw["Prospect ID"].tolist()
    assert {"score", "score_100", "tier", "route", "reasons"} <= set(scored.columns)
    assert scored["score"].between(0, 1).all() and scored["reasons"].str.len().gt(0).all()


def test_motion_batch_scoring_and_models_list(trained, b2b_dir, tmp_path):
    out = tmp_path / "b2b.parquet"
    r = run("score", "--model", "b2b", "--data", b2b_dir, "--as-of", "2026-05-01", "--out", out)
    assert r.exit_code == 0, r.output
    s = pd.read_parquet(out)
    leads = pd.read_parquet(b2b_dir / "leads.parquet")
    assert s["lead_id"].tolist() == leads.loc[leads["created_at"] <= "2026-05-01", "lead_id"].tolist()
    assert set(s["tier"]) <= {"A", "B", "C", "D"} and s["route"].isin(["ae_direct", "sdr_qualify",
                                                                        "marketing_nurture", "recycle"]).all()
    r = run("models", "list")
    assert r.exit_code == 0 and "champion" in r.output
    assert run("score", "--model", "b2b", "--data", b2b_dir, "--out", tmp_path / "x.txt").exit_code == 2


def test_logged_model_accepts_missing_values_in_integer_columns(tmp_path, trained):
    """Through MLflow's own loader (as `mlflow models serve` uses it): an integer column may arrive with gaps."""
    import mlflow
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.integers(0, 100, 1500)
    won = (rng.random(1500) < 1 / (1 + np.exp(-(a - 50) / 10))).astype(int)
    pd.DataFrame({"ref": np.arange(1500), "a": a, "b": rng.integers(0, 5, 1500), "won": won}).to_csv(
        tmp_path / "ints.csv", index=False)
    spec = {"name": "ints", "motion": "b2b", "data": str(tmp_path / "ints.csv"), "id": "ref",
            "label": {"column": "won", "positive": [1]}}
    (tmp_path / "ints.yaml").write_text(yaml.safe_dump(spec))
    r = run("train", "--spec", tmp_path / "ints.yaml")
    assert r.exit_code == 0, r.output
    model = mlflow.pyfunc.load_model("models:/ints@champion")
    whole = model.predict(pd.DataFrame({"a": [10, 90], "b": [1, 2]}))
    gaps = model.predict(pd.DataFrame({"a": [10, np.nan], "b": [1, 2]}))
    assert whole[0] == gaps[0] and whole[1] > 0.8 and 0 <= gaps[1] < whole[1]
