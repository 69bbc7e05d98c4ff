"""The scorer keeps serving the last good model when a new champion fails to load, and starts on its local copy
of the champion when the registry is down."""

from __future__ import annotations

import json

from leadscore.settings import PROJECT_ROOT, Settings
from model import registry
from serving.schemas import ScoreRequest
from serving.scorer import Scorer


def test_last_good_model_survives_a_broken_new_champion(trained, monkeypatch):
    scorer = Scorer(names=("hybrid",))
    assert scorer.reload() == {"hybrid": registry.alias_version("hybrid", "champion")}
    good = scorer.models["hybrid"].version
    monkeypatch.setattr(registry, "alias_version", lambda name, alias: "999")
    monkeypatch.setattr(
        registry,
        "load_cached",
        lambda name, version, cache: (_ for _ in ()).throw(RuntimeError("artifact missing")),
    )
    assert scorer.reload() == {}
    assert (
        scorer.models["hybrid"].version == good and "artifact missing" in scorer.status()["errors"]["hybrid"]
    )
    body = json.loads((PROJECT_ROOT / "serving/examples/hybrid.json").read_text())["request"]
    assert scorer.score(ScoreRequest.model_validate(body))["version"] == good
    assert scorer.ready()


def test_a_scorer_starts_on_its_local_copy_when_the_registry_is_down(trained, monkeypatch, tmp_path):
    body = json.loads((PROJECT_ROOT / "serving/examples/b2b.json").read_text())["request"]
    champion = registry.alias_version("b2b", "champion")
    Scorer(names=("b2b",)).reload()  # a service that ran before: its copy of the champion is on disk
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = Scorer(Settings.load(), names=("b2b",))
    assert down.reload() == {"b2b": champion} and down.ready()
    assert down.score(ScoreRequest.model_validate(body))["version"] == champion
    # Without a copy, the outage is reported (not raised): the service starts and says what is missing.
    monkeypatch.setenv("LEADSCORE_HOME", str(tmp_path / "elsewhere"))
    empty = Scorer(Settings.load(), names=("b2b",))
    assert empty.reload() == {} and not empty.ready()
    assert "registry" in empty.status()["errors"]["b2b"]


def test_customers_scored_from_their_stored_contexts_get_what_their_requests_get(trained, b2c_dir):
    """Re-scores after events score B2C customers from their contexts as columns (``score_stored``): the same
    features, scores, tiers, routes and reasons as a /score request per customer that reads the stored context."""
    import time

    import numpy as np
    import orjson
    import pandas as pd

    from features.online_store import key, open_store
    from serving.context_requests import payloads

    ids = pd.read_parquet(b2c_dir / "customers.parquet")["customer_id"].astype(str).tolist()[:300]
    raws = open_store(Settings.load().online_store_url).get_many([key("b2c", c) for c in ids])
    contexts = [orjson.loads(r) for r in raws if r]
    assert len(contexts) > 200 and sum(bool(c.get("events")) for c in contexts) > 100
    scorer = Scorer(names=("b2c",))
    scorer.reload()
    as_of = int(time.time())
    columns = scorer.score_stored("b2c", contexts, as_of)
    reqs = [ScoreRequest.model_validate(p | {"as_of": as_of}) for c in contexts for p in payloads("b2c", c)]
    rows = scorer.score_many(reqs, worded=False)
    assert columns["lead_id"] == [r["lead_id"] for r in rows]
    np.testing.assert_array_equal(columns["score"], [r["score"] for r in rows])
    for name in ("tier", "route", "owner", "sla_minutes", "reasons"):
        assert columns[name] == [r[name] for r in rows], name
    for name, values in columns["_features"].items():
        np.testing.assert_array_equal(values, [r["_features"][name] for r in rows], err_msg=name)
    assert len(set(columns["tier"])) > 1 and all(len(r) == 3 for why in columns["reasons"] for r in why)


def test_scoring_stored_contexts_of_a_motion_without_a_champion_is_refused_by_name(trained):
    import pytest

    from leadscore.errors import UserError

    scorer = Scorer(names=("b2b",))
    scorer.reload()
    with pytest.raises(UserError, match="motion: no b2c champion is loaded"):
        scorer.score_stored("b2c", [{"customer": {"customer_id": "C1", "created": 0}}])


def test_workers_that_start_on_one_new_version_at_once_all_load_it(trained, monkeypatch, tmp_path):
    """Each worker of a service downloads a version its machine has no copy of; when they place their copies at
    once, each one loads the version (the worker that placed second used to fail with 'Directory not empty' and
    serve without a model), and only the one copy stays."""
    import threading

    import mlflow.artifacts

    version = registry.alias_version("b2c", "champion")
    download, workers = mlflow.artifacts.download_artifacts, 4
    together = threading.Barrier(workers)

    def downloaded_by_all(**kw):
        out = download(**kw)
        together.wait(timeout=60)  # every worker holds its download before any places it
        return out

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", downloaded_by_all)
    loaded, failed = [], []

    def worker() -> None:
        try:
            loaded.append(registry.load_cached("b2c", version, tmp_path))
        except Exception as exc:  # noqa: BLE001  # reported by the assertion below
            failed.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failed and len(loaded) == workers
    assert all(m.motion == "b2c" for m in loaded)
    assert sorted(p.name for p in (tmp_path / "b2c").iterdir()) == [version, "serving"]
