"""Training through the CLI: specs, failure paths that register nothing, gated registry, batch scoring."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cli.app import app
from leadscore.config import load_config
from model import registry


@pytest.fixture(scope="module")
def xed(shared_data):
    return shared_data / "x_education_leads" / "Leads.csv"


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _names() -> set[str]:
    return {m.name for m in registry.client().search_registered_models()}


def _spec(tmp_path, xed, name="xed", **over) -> str:
    spec = {
        "name": name,
        "motion": "b2c",
        "data": str(xed),
        "id": "Prospect ID",
        "label": {"column": "Converted", "positive": [1]},
        "exclude": [
            "Lead Number",
            "Tags",
            "Lead Quality",
            "Lead Profile",
            "Last Activity",
            "Last Notable Activity",
            "Asymmetrique Activity Index",
            "Asymmetrique Profile Index",
            "Asymmetrique Activity Score",
            "Asymmetrique Profile Score",
        ],
        "missing_values": ["Select"],
    } | over
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
    base = {
        "name": "tiny",
        "motion": "b2b",
        "data": str(tmp_path / "flat.csv"),
        "label": {"column": "won", "positive": [1]},
    }
    (tmp_path / "few.yaml").write_text(yaml.safe_dump(base))
    r = run("train", "--spec", tmp_path / "few.yaml")
    assert r.exit_code == 2 and "only 20 positive rows" in r.output and "at least 100" in r.output
    (tmp_path / "nolabel.yaml").write_text(
        yaml.safe_dump(base | {"label": {"column": "outcome", "positive": [1]}})
    )
    r = run("train", "--spec", tmp_path / "nolabel.yaml")
    assert r.exit_code == 2 and "['outcome']" in r.output and "not in the data" in r.output
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(base | {"label": {"column": "Won", "positive": [1]}}))
    r = run(
        "train", "--spec", tmp_path / "case.yaml"
    )  # a column named as the user remembers it: the near one
    assert r.exit_code == 2 and "'Won': did you mean 'won'?" in r.output, r.output
    (tmp_path / "broken.parquet").write_text("not a parquet file")
    r = run("train", "--spec", tmp_path / "few.yaml", "--data", tmp_path / "broken.parquet")
    assert r.exit_code == 2 and "cannot read" in r.output
    r = run("train", "b2b", "--data", tmp_path / "nowhere")
    assert r.exit_code == 2 and "not found" in r.output
    assert _names() == before


def test_spec_model_registers_scores_and_is_gated(tmp_path, trained, xed):
    good = _spec(tmp_path, xed)
    # a short search: this test is about registration and gating (the default search: tests/e2e/test_byo_export.py)
    r = run("train", "--spec", good, "--search-seconds", 3)
    assert r.exit_code == 0, r.output
    assert registry.alias_version("xed", "champion") == "1"
    # A worse challenger: only two weak columns left.
    weak = {"Prospect ID", "Converted", "Country", "City"}
    worse = _spec(
        tmp_path,
        xed,
        exclude=[
            c for c in pd.read_csv(xed, nrows=1).columns if c not in weak and not c.startswith("Unnamed")
        ],
    )
    assert run("train", "--spec", worse, "--search-seconds", 3).exit_code == 0
    assert registry.alias_version("xed", "challenger") == "2"
    r = run("models", "promote", "xed")
    assert r.exit_code == 1 and "refused" in r.output and "AUC" in r.output
    assert registry.alias_version("xed", "champion") == "1"
    r = run("models", "promote", "xed", "--force", "--why", "testing the override")
    assert r.exit_code == 0 and registry.alias_version("xed", "champion") == "2"
    r = run("models", "rollback", "xed", "--why", "worse in production")
    assert r.exit_code == 0 and registry.alias_version("xed", "champion") == "1"
    actions = [(a["action"], a["from_version"], a["to_version"]) for a in registry.audit_log("xed")]
    assert actions == [
        ("initial", None, "1"),
        ("register", None, "2"),
        ("refused", "1", "1"),
        ("force-promote", "1", "2"),
        ("rollback", "2", "1"),
    ]
    assert "testing the override" in registry.audit_log("xed")[3]["why"]
    # Batch scoring keeps order and ids and adds the scoring columns.
    out = tmp_path / "scores.csv"
    r = run("score", "--model", "xed@champion", "--data", xed, "--spec", good, "--out", out)
    assert r.exit_code == 0, r.output
    scored, raw = pd.read_csv(out), pd.read_csv(xed)
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
    assert (
        set(s["tier"]) <= {"A", "B", "C", "D"}
        and s["route"].isin(["ae_direct", "sdr_qualify", "marketing_nurture", "recycle"]).all()
    )
    r = run("models", "list")
    assert r.exit_code == 0 and "champion" in r.output
    assert run("score", "--model", "b2b", "--data", b2b_dir, "--out", tmp_path / "x.txt").exit_code == 2


def test_the_logged_model_carries_the_spec_cleaning_and_accepts_gaps(tmp_path, trained):
    """Scored through MLflow's own loader (as `mlflow models serve` does) on raw export rows, the model applies
    the spec's value fixes and missing tokens itself and takes rows with inputs left out; `leadscore score
    --spec` also joins the lookup tables the spec names."""
    import mlflow
    import numpy as np

    rng = np.random.default_rng(0)
    n = 2000
    a, b = rng.integers(0, 100, n), rng.integers(0, 5, n)
    b[rng.random(n) < 0.2] = -1  # the export's "not asked"
    c = rng.choice(["technology", "technolgy", "retail"], n)  # one level with a typo
    acct = rng.choice(["k1", "k2", "k3"], n)
    logit = (
        (a - 50) / 12
        + np.where(b < 0, 2.0, -0.4 * b)
        + np.where(c == "retail", -1.5, 0.0)
        + np.where(acct == "k1", 1.5, 0.0)
    )
    won = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    raw = pd.DataFrame({"ref": np.arange(n), "a": a, "b": b, "c": c, "acct": acct, "won": won})
    raw.to_csv(tmp_path / "export.csv", index=False)
    pd.DataFrame({"acct": ["k1", "k2", "k3"], "size": ["big", "small", "small"]}).to_csv(
        tmp_path / "acc.csv", index=False
    )
    spec = {
        "name": "cleaned",
        "motion": "b2b",
        "data": "export.csv",
        "id": "ref",
        "exclude": ["acct"],
        "label": {"column": "won", "positive": [1]},
        "missing_values": {"b": [-1]},
        "replace": {"c": {"technolgy": "technology"}},
        "join": [{"data": "acc.csv", "key": "acct"}],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    r = run("train", "--spec", tmp_path / "spec.yaml", "--search-seconds", 3)
    assert r.exit_code == 0, r.output
    model = mlflow.pyfunc.load_model("models:/cleaned@champion")
    rows = pd.DataFrame(
        {
            "a": [60, 60, 60, 60, 60],
            "b": [-1, -1, 0, 2, 2],  # as in the export: whole numbers, -1 for "not asked"
            "c": ["retail", "retail", "retail", "technolgy", "technology"],
            "size": "big",
        }
    )
    p = model.predict(rows)
    gap = model.predict(rows.drop(columns=["b"]))  # an optional input left out is unknown
    assert p[0] == gap[0] and p[0] > p[2]  # the token -1 is missing, not a low number
    assert p[3] == p[4]  # the typo is the level it stands for, not an unknown one
    assert model.predict(pd.DataFrame({"a": [10, 90], "b": [1, 2]}))[1] > 0.5  # columns left out
    with pytest.raises(mlflow.exceptions.MlflowException, match="column a"):  # the typed signature, by name
        model.predict(pd.DataFrame({"a": ["ten"]}))
    out = tmp_path / "scores.csv"
    r = run(
        "score",
        "--model",
        "cleaned@champion",
        "--data",
        tmp_path / "export.csv",
        "--spec",
        tmp_path / "spec.yaml",
        "--out",
        out,
    )
    assert r.exit_code == 0, r.output
    joined = raw.merge(pd.read_csv(tmp_path / "acc.csv"), on="acct", how="left").drop(columns=["won"])
    scored = pd.read_csv(out)
    assert scored["ref"].tolist() == raw["ref"].tolist()
    assert np.allclose(scored["score"], model.predict(joined), atol=1e-12)
    assert not np.allclose(scored["score"], model.predict(joined.drop(columns=["size"])))


def test_a_spec_value_column_gives_expected_values(tmp_path, trained):
    import numpy as np

    rng = np.random.default_rng(1)
    n = 1500
    x, amount = rng.normal(size=n), rng.choice([1_000.0, 50_000.0], n)
    won = (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype(int)
    pd.DataFrame({"x": x, "amount": amount, "won": won}).to_csv(tmp_path / "deals.csv", index=False)
    spec = {"name": "valued", "motion": "b2b", "data": "deals.csv", "label": {"column": "won", "positive": [1]},
            "value": "amount"}  # fmt: skip
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert run("train", "--spec", tmp_path / "spec.yaml", "--search-seconds", 3).exit_code == 0
    model, _ = registry.load("valued@champion")
    assert model.value_feature == "amount"
    X = model.preprocessor.transform(pd.DataFrame({"x": [0.5, 0.5], "amount": [1_000.0, 50_000.0]}))
    s = model.score_matrix(X, reasons=0)
    cost = load_config("b2b").value.cost_of_contact
    assert s.expected_value == pytest.approx(s.score * np.array([1_000.0, 50_000.0]) - cost)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec | {"value": "amount_usd"}))
    r = run("train", "--spec", tmp_path / "bad.yaml")
    assert r.exit_code == 2 and "amount_usd" in r.output
