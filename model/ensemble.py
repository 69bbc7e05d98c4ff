"""Averaging boosters into one: the mean of several LightGBM models' log-odds, as a single booster.

Each tree's leaf and internal values are multiplied by its booster's weight and the trees are concatenated, in
LightGBM's own text model format (``model_to_string`` / ``Booster(model_str=)``). The result predicts exactly the
weighted mean raw score, and its SHAP values (``pred_contrib``) are exactly the weighted mean of theirs, so every reader of one
booster — the SHAP table, reasons, serving — reads the average unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import lightgbm as lgb

_TREE = re.compile(r"\nTree=\d+\n")
_VALUES = re.compile(r"^(leaf_value|internal_value)=(.*)$", re.M)


def _trees(text: str) -> list[str]:
    body = text.split("end of trees", 1)[0]
    return [t.strip("\n") for t in _TREE.split(body)[1:] if t.strip()]


def average(
    boosters: Sequence[lgb.Booster], iterations: Sequence[int | None], weights: Sequence[float] | None = None
) -> lgb.Booster:
    """One booster predicting the mean log-odds of ``boosters`` (weighted by ``weights``, which sum to 1; equal
    by default), each cut at its own iteration count."""
    if len(boosters) == 1:
        return lgb.Booster(model_str=boosters[0].model_to_string(num_iteration=iterations[0]))
    w = weights or [1 / len(boosters)] * len(boosters)
    texts = [b.model_to_string(num_iteration=i) for b, i in zip(boosters, iterations, strict=True)]

    def scaled(k: float):  # noqa: ANN202
        return lambda m: m.group(1) + "=" + " ".join(repr(float(v) * k) for v in m.group(2).split(" "))

    head = texts[0].split("\nTree=0\n", 1)[0]
    head = "\n".join(line for line in head.split("\n") if not line.startswith("tree_sizes="))
    tail = "end of trees" + texts[0].split("end of trees", 1)[1]
    trees = [_VALUES.sub(scaled(k), t) for text, k in zip(texts, w, strict=True) for t in _trees(text)]
    body = "".join(f"Tree={i}\n{t}\n\n\n" for i, t in enumerate(trees))
    return lgb.Booster(model_str=head.rstrip("\n") + "\n\n" + body + tail)
