"""Bring your own export, tried as a new user would: split a shared data set 75/25 (stratified), train with
``--spec`` on the 75%, score the 25% (label removed) with ``leadscore score --model NAME`` and no spec — the model
reads its own kind of file, keeps the id column and the order, refuses a file of the wrong shape naming the cause
(``--allow-missing`` overrides), and routes by the consent the spec maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.model_selection import train_test_split
from typer.testing import CliRunner

from cli.app import app

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _split(shared: Path, spec_name: str, tmp: Path, name: str) -> tuple[Path, pd.DataFrame, dict]:
    """The spec's data split 75/25 on its label, both parts written as the export is (same separator); a spec
    for the 75% under ``name``. Returns (spec path, holdout without its label, the spec)."""
    spec = yaml.safe_load((ROOT / "conf" / "specs" / f"{spec_name}.yaml").read_text())
    sep = spec.get("read_options", {}).get("sep", ",")
    source = (ROOT / "conf" / "specs" / spec["data"]).resolve()
    df = pd.read_csv(source, sep=sep)
    label = spec["label"]["column"]
    fit, holdout = train_test_split(df, test_size=0.25, stratify=df[label], random_state=0)
    fit.to_csv(tmp / "fit.csv", sep=sep, index=False)
    holdout = holdout.drop(columns=[label])
    holdout.to_csv(tmp / "holdout.csv", sep=sep, index=False)
    spec |= {"name": name, "data": str(tmp / "fit.csv")}
    (tmp / "spec.yaml").write_text(yaml.safe_dump(spec))
    return tmp / "spec.yaml", holdout, spec


def test_a_raw_export_scores_without_its_spec_and_a_wrong_separator_is_refused(shared_data, tmp_path):
    spec, holdout, _ = _split(shared_data, "bank_full", tmp_path, "bank_byo")
    # What is tested here is scoring (without the spec, a wrong separator, renamed columns): a short search keeps
    # the suite within its time (the default search on a real export: X Education's test below; its quality:
    # bench/quality.py).
    r = run("train", "--spec", spec, "--search-seconds", 10)
    assert r.exit_code == 0, r.output
    plain, with_spec = tmp_path / "plain.csv", tmp_path / "with-spec.csv"
    r = run("score", "--model", "bank_byo", "--data", tmp_path / "holdout.csv", "--out", plain)
    assert r.exit_code == 0, r.output
    # The comparison runs without reasons (the search's model explains about 1,000 rows a second on 2 cores);
    # the default run above gave them.
    r = run("score", "--model", "bank_byo", "--spec", spec, "--data", tmp_path / "holdout.csv", "--out", with_spec,
            "--reasons", 0)  # fmt: skip
    assert r.exit_code == 0, r.output
    a, b = pd.read_csv(plain), pd.read_csv(with_spec)
    assert len(a) == len(holdout) and np.allclose(a["score"], b["score"], atol=1e-12)
    assert a["reasons"].notna().all() and b["reasons"].isna().all()
    assert a["score"].nunique() > 100  # not one score for every row
    # the spec's own routes, by tier (the motion's read cart features a bank export lacks)
    assert (a["route"].eq("call_this_week") == a["tier"].isin(["high", "medium"])).all()
    assert a["route"].eq("call_this_week").any() and a["route"].eq("not_this_campaign").any()
    assert (a["route"] != "suppress_no_consent").all()  # the spec's consent policy: the bank's own clients

    # The same holdout written with commas: read with the model's ";" it is one column — refused, named.
    holdout.to_csv(tmp_path / "commas.csv", index=False)
    out = tmp_path / "garbage.csv"
    r = run("score", "--model", "bank_byo", "--data", tmp_path / "commas.csv", "--out", out)
    assert r.exit_code == 2 and not out.exists(), r.output
    assert "single column" in r.output and "sep=';'" in r.output and "--allow-missing" in r.output
    # Renamed columns: named as such.
    holdout.rename(columns={"age": "Age", "balance": "Balance"}).to_csv(
        tmp_path / "renamed.csv", sep=";", index=False
    )
    r = run("score", "--model", "bank_byo", "--data", tmp_path / "renamed.csv", "--out", out)
    assert r.exit_code == 2 and "renamed" in r.output and "age" in r.output and not out.exists(), r.output
    r = run("score", "--model", "bank_byo", "--data", tmp_path / "renamed.csv", "--out", out, "--allow-missing",
            "--reasons", 0)  # fmt: skip
    assert r.exit_code == 0 and out.exists() and "age" in r.output, (
        r.output
    )  # scored, and the gap is reported


def test_the_id_column_is_kept_and_consent_is_mapped(shared_data, tmp_path, caplog):
    spec, holdout, s = _split(shared_data, "x_education", tmp_path, "xed_byo")
    r = run("train", "--spec", spec)
    assert r.exit_code == 0, r.output
    out = tmp_path / "scores.csv"
    r = run("score", "--model", "xed_byo", "--data", tmp_path / "holdout.csv", "--out", out)
    assert r.exit_code == 0, r.output
    scored = pd.read_csv(out)
    assert "row" not in scored.columns and scored["Prospect ID"].tolist() == holdout["Prospect ID"].tolist()
    no_email, no_call = (
        holdout["Do Not Email"].eq("Yes").to_numpy(),
        holdout["Do Not Call"].eq("Yes").to_numpy(),
    )
    route = scored["route"]
    suppressed = route.eq("suppress_no_consent").to_numpy()
    assert (suppressed == (no_email & no_call)).all()  # opted out of both: suppressed
    # The others by the spec's own routes (the motion's read cart features this export lacks): by tier and by
    # the channel each lead allows — a counsellor calls the hot ones who may be called, nobody opted out of
    # email is emailed.
    hot = scored["tier"].isin(["high", "medium"]).to_numpy()
    assert (route.eq("counsellor_call").to_numpy() == (hot & ~no_call)).all()
    assert not route[no_email].isin(["counsellor_email", "nurture"]).any()
    assert {"counsellor_call", "counsellor_email", "nurture"} <= set(route)

    # Routes are policy: the spec's as it reads now apply when it is given at scoring, without retraining.
    wider = [r | ({"when": [{"tier": ["high", "medium", "low"]}, {"consent": "sms"}]} if r["name"] ==
                  "counsellor_call" else {}) for r in s["routes"]]  # fmt: skip
    (tmp_path / "wider.yaml").write_text(yaml.safe_dump(s | {"routes": wider}))
    r = run("score", "--model", "xed_byo", "--spec", tmp_path / "wider.yaml", "--data", tmp_path / "holdout.csv",
            "--out", out, "--reasons", 0)  # fmt: skip
    assert r.exit_code == 0, r.output
    again = pd.read_csv(out)
    assert np.allclose(again["score"], scored["score"], atol=1e-12)
    warm = again["tier"].isin(["high", "medium", "low"]).to_numpy()
    assert (again["route"].eq("counsellor_call").to_numpy() == (warm & ~no_call)).all()
    (tmp_path / "elsewhere.yaml").write_text(
        yaml.safe_dump(s | {"routes": [{"name": "x", "when": [{"feature": "Visits"}]}, {"name": "rest"}]})
    )
    r = run("score", "--model", "xed_byo", "--spec", tmp_path / "elsewhere.yaml", "--data",
            tmp_path / "holdout.csv", "--out", out)  # fmt: skip
    assert r.exit_code == 2 and "route 'x' reads 'Visits', which model 'xed_byo' does not read" in r.output

    # Routes that read a column the export lacks, or a tier the motion does not have: refused before training.
    for bad, said in (
        ({"name": "call", "when": [{"feature": "Visits", "value": 3}]}, "route 'call' reads 'Visits'"),
        ({"name": "call", "when": [{"tier": ["A"]}]}, "route 'call': tier 'A' is not one of"),
    ):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(s | {"routes": [bad, {"name": "rest"}]}))
        r = run("train", "--spec", tmp_path / "bad.yaml")
        assert r.exit_code == 2 and said in r.output, r.output

    # Without a consent mapping every lead is unknown: suppressed — and the run says so, with the routes. Without
    # its own routes, the motion's that read features the export lacks are named.
    s.pop("consent")
    s.pop("routes")
    (tmp_path / "no-consent.yaml").write_text(yaml.safe_dump(s | {"name": "xed_noconsent"}))
    assert run("train", "--spec", tmp_path / "no-consent.yaml", "--search-seconds", 3).exit_code == 0
    lacking = [m for m in caplog.messages if "read features this export lacks" in m]
    assert len(lacking) == 1 and "human_concierge" in lacking[0] and "cart_value" in lacking[0]
    r = run("score", "--model", "xed_noconsent", "--data", tmp_path / "holdout.csv", "--out", out)
    assert r.exit_code == 0 and pd.read_csv(out)["route"].eq("suppress_no_consent").all()
    said = [m for m in caplog.messages if "maps no consent columns" in m]
    assert len(said) == 1 and "suppress_no_consent" in said[0]  # once per run, with the route counts
    named = [
        m for m in caplog.messages if "never apply for model xed_noconsent" in m and "human_concierge" in m
    ]
    assert len(named) == 2  # once at training, once at scoring
