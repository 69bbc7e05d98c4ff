"""Reason codes: per lead, the top positive and negative contributors, worded for a rep.

Contributions are LightGBM's per-row SHAP values (``pred_contrib``, log-odds). Words come from the feature
definitions' labels; a flat (spec) column gets its name and value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.definitions import GROUP_LABEL, FeatureSet


@dataclass(frozen=True)
class Wording:
    group: str
    label: str  # format string over {v}
    name: str = ""

    def text(self, value: object, contribution: float) -> str:
        group = GROUP_LABEL.get(self.group, self.group)
        if contribution >= 0.3:
            group = f"strong {group}"
        elif contribution < 0:
            group = f"weak {group}" if self.group in ("intent", "engagement", "fit", "behavior") else group
        if value is None or (isinstance(value, float) and value != value):
            subject = self.name.split("_", 1)[-1].replace("_", " ") if self.group != "data" else self.name
            return f"{group}: {subject} not known yet"
        return f"{group}: {_fill(self.label, value)}"


def _fill(label: str, value: object) -> str:
    try:
        return label.format(v=value)
    except (ValueError, TypeError):
        return label.replace("{v:.0f}", str(value)).replace("{v:.1f}", str(value)).replace("{v:.0%}", str(value)).format(v=value)


def wordings(columns: list[str], fs: FeatureSet | None) -> dict[str, Wording]:
    known = {f.name: f for f in fs.features} if fs else {}
    out = {}
    for c in columns:
        if c in known:
            out[c] = Wording(known[c].group, known[c].label, c)
        else:
            out[c] = Wording("data", f"{c} = {{v}}", c)
    return out


def top_reasons(contrib: np.ndarray, X: np.ndarray, columns: list[str], words: dict[str, Wording],
                display, k: int = 3) -> list[list[dict]]:
    """Per row of ``contrib`` (rows x features, no bias): its k most positive then k most negative reasons.

    ``display(column, value)`` turns a model input back into what the rep reads (a category's name).
    """
    if contrib.shape[1] == 0:
        return [[] for _ in range(len(contrib))]
    k = min(k, contrib.shape[1])
    order = np.argsort(contrib, axis=1, kind="stable")
    picks = np.concatenate([order[:, ::-1][:, :k], order[:, :k]], axis=1)
    chosen = np.take_along_axis(contrib, picks, axis=1)
    values = np.take_along_axis(X, picks, axis=1)
    out = []
    for js, cs, vs in zip(picks.tolist(), chosen.tolist(), values.tolist(), strict=True):
        row = []
        for n, (j, c, v) in enumerate(zip(js, cs, vs, strict=True)):
            if (n < k and c <= 1e-9) or (n >= k and c >= -1e-9):
                continue
            col = columns[j]
            w = words[col]
            shown = display(col, v)
            row.append({"feature": col, "group": w.group, "value": shown, "direction": "+" if c > 0 else "-",
                        "contribution": round(c, 4), "text": w.text(shown, c)})
        out.append(row)
    return out


def group_sums(contrib: np.ndarray, columns: list[str], words: dict[str, Wording]) -> list[dict[str, float]]:
    """Per row, the contributions summed by feature group (fit, intent, engagement, ...)."""
    groups = list(dict.fromkeys(words[c].group for c in columns))
    member = np.zeros((len(columns), len(groups)))
    for j, c in enumerate(columns):
        member[j, groups.index(words[c].group)] = 1.0
    return [dict(zip(groups, r, strict=True)) for r in (contrib @ member).tolist()]
