"""Reasons kept unworded (an entity's latest score after events) read as the worded reasons once worded."""

import numpy as np

from features.definitions import feature_set
from model.reasons import reason_picks, top_reasons, worded, wordings


def test_reasons_kept_unworded_word_exactly_as_the_worded_ones():
    rng = np.random.default_rng(7)
    fs = feature_set("b2c_v1")
    columns = [f.name for f in fs.features][:12] + ["plan_code", "flat_column"]
    words = wordings(columns, fs)
    levels = ["basic", "pro", "max"]

    def display(col: str, v: float) -> object:
        if v != v:
            return None
        return levels[int(v)] if col == "plan_code" else v

    contrib = rng.normal(0, 0.4, size=(300, len(columns)))
    contrib[:5] = [0.3, 0.29999, -1e-12, 0.0] + [0.0] * (
        len(columns) - 4
    )  # bands at their edges; zeros left out
    contrib[5:8] = 0.0  # nothing to say
    X = rng.normal(3, 2, size=contrib.shape)
    X[:, -2] = rng.integers(0, 3, size=len(X))
    X[rng.random(X.shape) < 0.1] = np.nan
    kept = reason_picks(contrib, X, columns, display)
    assert worded(kept[0], words) and all(len(r) == 3 for row in kept for r in row)
    assert [worded(row, words) for row in kept] == top_reasons(contrib, X, columns, words, display)
    assert kept[5] == []
    # reasons worded already (kept by an earlier version) stay as they are; a feature the model lost is data
    old = top_reasons(contrib[:1], X[:1], columns, words, display)[0]
    assert worded(old, words) == old
    assert worded([["gone_feature", 2.0, 0.1]], words)[0]["text"] == "data: gone_feature = 2.0"
