"""Reason codes: per lead, the top positive and negative contributors, worded for a rep.

Contributions are LightGBM's per-row SHAP values (``pred_contrib``, log-odds). Words come from the feature
definitions' labels; a flat (spec) column gets its name and value.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from features.definitions import GROUP_LABEL, FeatureSet

MEMO = 4096  # reason texts a wording remembers


@dataclass(frozen=True)
class Wording:
    group: str
    label: str  # format string over {v}
    name: str = ""

    def text(self, value: object, contribution: float) -> str:
        strong, weak, plain, subject = self.phrases
        group = strong if contribution >= 0.3 else weak if contribution < 0 else plain
        if value is None or (isinstance(value, float) and value != value):
            return f"{group}: {subject} not known yet"
        return f"{group}: {_fill(self.label, value)}"

    @functools.cached_property
    def phrases(self) -> tuple[str, str, str, str]:
        """Its group phrases (strong, weak, plain) and the subject of its "not known yet" text, worked out once
        (kept in the instance: a frozen dataclass's fields stay as they are)."""
        group = GROUP_LABEL.get(self.group, self.group)
        weak = f"weak {group}" if self.group in ("intent", "engagement", "fit", "behavior") else group
        subject = self.name.split("_", 1)[-1].replace("_", " ") if self.group != "data" else self.name
        return f"strong {group}", weak, group, subject

    def worded(self, value: object, contribution: float, display) -> tuple[object, str]:
        """(the value as shown, the text) of a reason with this model input ``value``: remembered per value and
        strength (up to MEMO entries), so a batch words each distinct value once."""
        band = 0 if contribution >= 0.3 else 1 if contribution < 0 else 2
        hit = self._memo.get((value, band))
        if hit is None:
            shown = display(self.name, value)
            hit = (shown, self.text(shown, contribution))
            if len(self._memo) < MEMO and value == value:  # NaN never equals a key: not remembered
                self._memo[value, band] = hit
        return hit

    @functools.cached_property
    def _memo(self) -> dict[tuple[object, int], tuple[object, str]]:
        return {}

    def __getstate__(self) -> dict:  # the phrases and the memo are made again where the model is loaded
        return {k: v for k, v in self.__dict__.items() if k not in ("phrases", "_memo")}


def _fill(label: str, value: object) -> str:
    try:
        return label.format(v=value)
    except (ValueError, TypeError):
        return (
            label.replace("{v:.0f}", str(value))
            .replace("{v:.1f}", str(value))
            .replace("{v:.0%}", str(value))
            .format(v=value)
        )


def reason_texts(
    contrib: np.ndarray, X: np.ndarray, columns: list[str], words: dict[str, Wording], display, k: int = 3
) -> list[str]:
    """Per row, the same reasons as ``top_reasons`` as one line of text ("+ strong intent: …; - …"), without a
    dict per reason (batch scoring's output); the picks are made for the whole batch at once."""
    if contrib.shape[1] == 0 or len(contrib) == 0:
        return [""] * len(contrib)
    picks, chosen, values, shown, k = _picks(contrib, X, k)
    ws = [words[c] for c in columns]
    out = []
    for js, cs, vs, ok in zip(picks.tolist(), chosen.tolist(), values.tolist(), shown.tolist(), strict=True):
        out.append("; ".join(
            f"{'+' if c > 0 else '-'} {ws[j].text(display(columns[j], v), c)}"
            for j, c, v, keep in zip(js, cs, vs, ok, strict=True) if keep
        ))  # fmt: skip
    return out


def reason_table(
    contrib: np.ndarray, X: np.ndarray, columns: list[str], words: dict[str, Wording], display, k: int = 3
) -> dict[str, list]:
    """The same reasons as ``top_reasons`` as one table of columns — ``row`` (the lead's index), ``feature``,
    ``group``, ``value``, ``direction``, ``contribution``, ``text`` — in the same order: no dict per reason."""
    if contrib.shape[1] == 0 or len(contrib) == 0:
        return {c: [] for c in ("row", "feature", "group", "value", "direction", "contribution", "text")}
    picks, chosen, values, shown, k = _picks(contrib, X, k)
    rows = np.broadcast_to(np.arange(len(contrib))[:, None], picks.shape)[shown]
    js, cs, vs = picks[shown].tolist(), chosen[shown], values[shown].tolist()
    ws = [words[c] for c in columns]
    worded = [ws[j].worded(v, c, display) for j, v, c in zip(js, vs, cs.tolist(), strict=True)]
    names = np.asarray(columns, dtype=object)
    groups = np.asarray([w.group for w in ws], dtype=object)
    return {
        "row": rows.tolist(),
        "feature": names[js].tolist(),
        "group": groups[js].tolist(),
        "value": [v for v, _ in worded],
        "direction": np.where(cs > 0, "+", "-").tolist(),
        "contribution": np.round(cs, 4).tolist(),
        "text": [t for _, t in worded],
    }


def wordings(columns: list[str], fs: FeatureSet | None) -> dict[str, Wording]:
    known = {f.name: f for f in fs.features} if fs else {}
    out = {}
    for c in columns:
        if c in known:
            out[c] = Wording(known[c].group, known[c].label, c)
        else:
            out[c] = Wording("data", f"{c} = {{v}}", c)
    return out


def _picks(contrib: np.ndarray, X: np.ndarray, k: int):
    """Per row, the k most positive then the k most negative columns: their indices, contributions, values, and
    whether each slot points its way (some rows have fewer than k of either sign)."""
    k = min(k, contrib.shape[1])
    order = np.argsort(contrib, axis=1, kind="stable")
    picks = np.concatenate([order[:, ::-1][:, :k], order[:, :k]], axis=1)
    chosen = np.take_along_axis(contrib, picks, axis=1)
    values = np.take_along_axis(X, picks, axis=1)
    shown = np.concatenate([chosen[:, :k] > 1e-9, chosen[:, k:] < -1e-9], axis=1)
    return picks, chosen, values, shown, k


def top_reasons(
    contrib: np.ndarray, X: np.ndarray, columns: list[str], words: dict[str, Wording], display, k: int = 3
) -> list[list[dict]]:
    """Per row of ``contrib`` (rows x features, no bias): its k most positive then k most negative reasons.

    ``display(column, value)`` turns a model input back into what the rep reads (a category's name).
    """
    if contrib.shape[1] == 0:
        return [[] for _ in range(len(contrib))]
    picks, chosen, values, shown_, k = _picks(contrib, X, k)
    ws = [words[c] for c in columns]
    out = []
    rounded = np.round(chosen, 4).tolist()
    for js, cs, rs, vs, ok in zip(
        picks.tolist(), chosen.tolist(), rounded, values.tolist(), shown_.tolist(), strict=True
    ):
        row = []
        for j, c, r, v, keep in zip(js, cs, rs, vs, ok, strict=True):
            if keep:
                w = ws[j]
                shown, text = w.worded(v, c, display)
                row.append(
                    {
                        "feature": columns[j],
                        "group": w.group,
                        "value": shown,
                        "direction": "+" if c > 0 else "-",
                        "contribution": r,
                        "text": text,
                    }
                )
        out.append(row)
    return out


def reason_picks(
    contrib: np.ndarray, X: np.ndarray, columns: list[str], display, k: int = 3
) -> list[list[list]]:
    """The same reasons as ``top_reasons``, not worded: per row, ``[feature, value as shown, contribution]``
    each. What an entity's latest score keeps (``worded`` words the few that a notification carries)."""
    if contrib.shape[1] == 0:
        return [[] for _ in range(len(contrib))]
    picks, chosen, values, shown, k = _picks(contrib, X, k)
    return [
        [
            [columns[j], display(columns[j], v), c]
            for j, c, v, keep in zip(js, cs, vs, ok, strict=True)
            if keep
        ]
        for js, cs, vs, ok in zip(
            picks.tolist(), chosen.tolist(), values.tolist(), shown.tolist(), strict=True
        )
    ]


def worded(reasons: list, words: dict[str, Wording]) -> list[dict]:
    """Reasons kept by ``reason_picks`` as ``top_reasons`` gives them (a reason worded already stays as it is; a
    feature the model does not know is worded as a data column)."""
    out = []
    for r in reasons:
        if isinstance(r, dict):
            out.append(r)
            continue
        feature, shown, c = r
        w = words.get(feature) or Wording("data", f"{feature} = {{v}}", feature)
        out.append({"feature": feature, "group": w.group, "value": shown, "direction": "+" if c > 0 else "-",
                    "contribution": float(np.round(c, 4)), "text": w.text(shown, c)})  # fmt: skip
    return out


def group_columns(
    contrib: np.ndarray, columns: list[str], words: dict[str, Wording]
) -> dict[str, np.ndarray]:
    """The contributions summed by feature group (fit, intent, engagement, ...): one column per group."""
    groups = list(dict.fromkeys(words[c].group for c in columns))
    member = np.zeros((len(columns), len(groups)))
    for j, c in enumerate(columns):
        member[j, groups.index(words[c].group)] = 1.0
    return dict(zip(groups, (contrib @ member).T, strict=True))
