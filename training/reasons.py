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


def top_reasons(contrib: np.ndarray, display: list[object], columns: list[str], words: dict[str, Wording],
                k: int = 3) -> list[dict]:
    """``contrib``: one row's contributions (no bias). Returns k positive then k negative reasons."""
    order = np.argsort(-contrib)
    pos = [j for j in order[:k] if contrib[j] > 1e-9]
    neg = [j for j in order[::-1][:k] if contrib[j] < -1e-9]
    out = []
    for j in pos + neg:
        c = columns[j]
        w = words[c]
        v = display[j]
        out.append({"feature": c, "group": w.group, "value": v if not (isinstance(v, float) and v != v) else None,
                    "direction": "+" if contrib[j] > 0 else "-", "contribution": round(float(contrib[j]), 4),
                    "text": w.text(v, float(contrib[j]))})
    return out


def group_sums(contrib: np.ndarray, columns: list[str], words: dict[str, Wording]) -> dict[str, float]:
    sums: dict[str, float] = {}
    for j, c in enumerate(columns):
        g = words[c].group
        sums[g] = sums.get(g, 0.0) + float(contrib[j])
    return sums
