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
