"""The closed loop end to end, on SQLite and on PostgreSQL:
generate → train → batch score → outcomes from ground truth → ingest (idempotent, transactional) → report →
drift injected and detected → retrain promotes a better challenger and refuses a worse one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from features.definitions import feature_set
from feedback.labelled_rows import labelled
from feedback.report import build, write
from feedback.retrain import retrain
from leadscore import score_rows
from leadscore.config import load_config
from leadscore.outcomes import count, ingest_file
from leadscore.schema import SchemaError
from leadscore.store import Store
from model import registry
from serving.file_scoring import score_file
from synthetic import generate
from training.fit import TrainingRows, fit_and_evaluate
from training.pipelines import motion_frame
from training.track import log_and_register

pytestmark = pytest.mark.slow
WEAK = [
    "behavior_recency_days",
    "behavior_sessions_1d",
    "behavior_sessions_7d",
    "behavior_sessions_30d",
    "behavior_product_views_7d",
    "behavior_product_views_30d",
    "behavior_minutes_on_site_30d",
    "behavior_searches_7d",
    "behavior_categories_30d",
    "behavior_returning",
    "behavior_email_clicks_30d",
    "cart_items",
    "cart_value",
    "cart_adds_7d",
    "cart_removes_7d",
    "cart_minutes_since_add",
    "cart_abandoned",
    "cart_checkout_no_purchase",
    "lifecycle_consent_email",
    "lifecycle_consent_sms",
]


@pytest.fixture(params=["sqlite", "postgres"])
def loop_env(request, tmp_path, monkeypatch):
    if request.param == "postgres":
        url = request.getfixturevalue("pg_schema_url")
    else:
        url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("LEADSCORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEADSCORE_STORE_URL", url)
    store = Store(url)
    yield store, tmp_path
    store.close()


def _weak(conf):
    return conf.model_copy(update={"model_inputs_exclude": WEAK})


def test_closed_loop(loop_env, browser):
    store, tmp = loop_env
    data, drifted = tmp / "b2c", tmp / "b2c_drifted"
    generate("b2c", 5000, 21, data)
    conf = load_config("b2c")
    # Champion: an old, weak model (profile and order history only).
    X, y, v = motion_frame("b2c", data, _weak(conf))
    rows = TrainingRows(X, y, time_col="as_of", label_value=v)
    old = log_and_register(
        fit_and_evaluate(rows, _weak(conf), name="b2c", fs=feature_set("b2c_v1")), conf, {"source": "test"}
    )
    assert old.alias == "champion"
    for as_of in ("2026-05-27", "2026-06-03", "2026-06-10", "2026-06-17"):
        score_file("b2c", data, tmp / f"s-{as_of}.parquet", as_of=as_of, store=store)
    scored = len(score_rows.read(store, "b2c"))
    assert scored > 10_000
    # Batch routes read consent from the features, though the model does not score on it.
    routes = pd.read_parquet(tmp / "s-2026-06-17.parquet")["route"]
    assert (routes == "suppress_no_consent").mean() < 0.5 and routes.nunique() >= 3

    # Ingest: validated, idempotent, transactional.
    first = ingest_file(data / "outcomes.parquet", store)
    assert first.inserted == first.rows > 0 and count(store, "b2c") == first.rows
    again = ingest_file(data / "outcomes.parquet", store)
    assert again.inserted == 0 and again.duplicates == first.rows and count(store, "b2c") == first.rows
    bad = pd.DataFrame(
        {
            "customer_id": ["C00000001", "C00000002", "C00000003", None],
            "purchased": [True, "maybe", False, True],
            "value": [10.0, 5.0, None, 3.0],
            "occurred_at": ["2026-06-30 10:00", "2026-06-30 11:00", "2031-01-01", "2026-06-30 12:00"],
        }
    )
    bad.to_csv(tmp / "bad.csv", index=False)
    with pytest.raises(SchemaError) as info:
        ingest_file(tmp / "bad.csv", store)
    assert "3 invalid rows" in str(info.value) and "purchased: not a boolean" in str(info.value)
    assert "occurred_at: timestamp in the future" in str(
        info.value
    ) and "customer_id: must not be empty" in str(info.value)
    assert count(store, "b2c") == first.rows
    q = ingest_file(tmp / "bad.csv", store, quarantine=tmp / "quarantine.csv")
    assert (q.inserted, q.quarantined) == (1, 3)
    assert pd.read_csv(tmp / "quarantine.csv")["reason"].str.len().gt(0).all()

    # Labelled rows carry exactly the features the model saw, labelled only from later outcomes.
    rows = labelled(store, conf)
    assert len(rows) > 5000 and 0.01 < rows["label"].mean() < 0.2
    assert set(rows["features"].iloc[0]) >= {"behavior_orders", "lifecycle_stage"}
    assert (rows["as_of"] <= pd.Timestamp("2026-06-17")).all()

    # Report.
    rep = build("b2c", store)
    page = write(rep, tmp / "report")
    s = rep.summary
    assert s["rows"] == len(rows) and 0.55 < s["auc"] < 1 and s["ece"] < 0.05
    assert set(s["revenue_by_tier"]) == {"high", "medium", "low", "none"}
    assert page.exists() and "data:image/png;base64" in page.read_text()
    saved = json.loads((tmp / "report" / "summary.json").read_text())
    assert saved["motion"] == "b2c" and saved["alerts"] == rep.alerts
    assert set(saved["tables"]) == {"tiers", "deciles", "trend", "psi"}  # everything the page shows
    assert len(saved["tables"]["trend"]) >= 2 and {
        "auc",
        "ece",
        "ece_floor",
        "score_psi",
        "conversion_high",
    } <= set(saved["tables"]["trend"][0])
    assert all(0 < w["ece_floor"] < 0.2 for w in saved["tables"]["trend"])  # what a week's rows can tell
    text = page.read_text()
    assert not re.search(r"\d\.\d{5,}", re.sub(r"base64,[^\"]+", "", text)), "unformatted numbers"
    assert "[]" not in text and "{'" not in text
    shot, errors = browser(page)
    assert errors == [], errors
    assert _not_blank(shot)

    # Drift injected: a new population browsing three times as much is detected.
    generate("b2c", 3000, 22, drifted, scale=3.0)
    score_file("b2c", drifted, tmp / "drift.parquet", as_of="2026-06-22", store=store)
    ingest_file(drifted / "outcomes.parquet", store)
    recent = build("b2c", store, since="2026-06-22")
    assert recent.summary["drifted_features"], recent.tables["psi"].head()
    assert recent.summary["max_feature_psi"] > conf.feedback.psi_bound

    # Retrain on evidence: a better challenger (all features) is promoted ...
    d = retrain("b2c", store=store, data=data)
    assert d.retrain and any("new labelled rows" in r for r in d.reasons)
    assert d.promoted, d.gate
    assert registry.alias_version("b2c", "champion") == d.challenger
    # ... and a worse one (the weak feature set again) is refused; the champion stays.
    worse = retrain("b2c", store=store, data=data, force=True, conf=_weak(conf))
    assert worse.retrain and not worse.promoted and any("worse" in g for g in worse.gate)
    assert registry.alias_version("b2c", "champion") == d.challenger
    decisions = store.query(
        "SELECT decision, promoted FROM retrain_decisions WHERE motion = 'b2c' ORDER BY id"
    )
    assert [(r["decision"], r["promoted"]) for r in decisions] == [("retrain", 1), ("retrain", 0)]
    audit = [a["action"] for a in registry.audit_log("b2c", store)]
    assert audit == ["initial", "register", "promote", "register", "refused"]


def _not_blank(png: Path) -> bool:
    """More than a few colours and more than 2% of the pixels not white."""
    from PIL import Image

    img = Image.open(png).convert("RGB")
    pixels = list(img.getdata())
    return len(set(pixels)) > 50 and sum(p != (255, 255, 255) for p in pixels) > 0.02 * len(pixels)


def test_the_browser_check_sees_console_errors_and_blank_pages(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><html><body><script>console.error('boom'); undefinedCall();</script></body></html>"
    )
    shot, errors = browser(page)
    assert errors and any("boom" in e or "undefinedCall" in e for e in errors)
    assert not _not_blank(shot)
