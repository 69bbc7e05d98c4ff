"""The scorer keeps serving the last good model when a new champion fails to load."""

from __future__ import annotations

import json

from leadscore.settings import PROJECT_ROOT
from model import registry
from serving.schemas import ScoreRequest
from serving.scorer import Scorer


def test_last_good_model_survives_a_broken_new_champion(trained, monkeypatch):
    scorer = Scorer(names=("hybrid",))
    assert scorer.reload() == {"hybrid": registry.alias_version("hybrid", "champion")}
    good = scorer.models["hybrid"].version
    monkeypatch.setattr(registry, "alias_version", lambda name, alias: "999")
    monkeypatch.setattr(registry, "load", lambda ref: (_ for _ in ()).throw(RuntimeError("artifact missing")))
    assert scorer.reload() == {}
    assert (
        scorer.models["hybrid"].version == good and "artifact missing" in scorer.status()["errors"]["hybrid"]
    )
    body = json.loads((PROJECT_ROOT / "serving/examples/hybrid.json").read_text())["request"]
    assert scorer.score(ScoreRequest.model_validate(body))["version"] == good
    assert scorer.ready()
