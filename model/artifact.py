"""The model artifact: one custom MLflow pyfunc per motion (or spec) holding everything scoring needs.

Preprocessing, the LightGBM booster, the calibrator, fitted tier thresholds, reason wording and the drift
reference travel together, so serving loads ``models:/NAME@champion`` and needs nothing else.
``predict`` returns calibrated probabilities (not 0/1 labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from model.calibration import Calibrator
from model.exports import ExportReader
from model.linear import LinearPart
from model.preprocess import Preprocessor
from model.reasons import Wording, group_columns, reason_picks, reason_table, reason_texts, top_reasons
from model.shap_table import TreeTable
from model.tiers import TierPolicy


class LeadScoreModel(PythonModel):
    reader: ExportReader | None = None  # a spec model: how files of its export's shape are read (and consent)
    linear: LinearPart | None = None  # a blended model's linear half (log-odds weight ``blend``)
    blend: float = 0.0
    routes: list[dict] | None = None  # a spec model's own routes (the spec's ``routes:``), as plain data

    def __init__(
        self,
        *,
        name: str,
        motion: str,
        feature_set: str | None,
        preprocessor: Preprocessor,
        booster: lgb.Booster,
        calibrator: Calibrator,
        tiers: TierPolicy,
        words: dict[str, Wording],
        value_feature: str | None,
        reference: dict[str, Any],
        linear: LinearPart | None = None,
        blend: float = 0.0,
    ):
        self.name, self.motion, self.feature_set = name, motion, feature_set
        self.preprocessor = preprocessor
        self.booster_str = booster.model_to_string()
        self.calibrator, self.tiers, self.words = calibrator, tiers, words
        self.value_feature, self.reference = value_feature, reference
        self.linear, self.blend = (linear, blend) if linear is not None and blend > 0 else (None, 0.0)
        self._booster: lgb.Booster | None = booster
        self._table: TreeTable | bool | None = None

    # -- persistence: the booster travels as its text model
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_booster"] = None
        state["_table"] = None
        return state

    @property
    def booster(self) -> lgb.Booster:
        if self._booster is None:
            self._booster = lgb.Booster(model_str=self.booster_str)
        return self._booster

    @property
    def table(self) -> TreeTable | None:
        """Precomputed exact contributions (None for trees too large to tabulate: pred_contrib is used)."""
        if getattr(self, "_table", None) is None:
            self._table = TreeTable.from_booster(self.booster) or False
        return self._table if isinstance(self._table, TreeTable) else None

    def contributions(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """Per-row SHAP values (log-odds) plus the expected value last; they sum to the raw log-odds. A blend's
        are the weighted sum of the booster's and the linear half's, which sum to the blended log-odds.
        ``threads``: LightGBM's, for models too large for the SHAP table (0: every core, for a batch process;
        a service worker keeps to one)."""
        table = self.table
        if table is not None:
            tree = table.contributions(X)
        else:
            tree = np.asarray(self.booster.predict(X, pred_contrib=True, num_threads=threads))
        if self.linear is None:
            return tree
        return (1 - self.blend) * tree + self.blend * self.linear.contributions(X)

    @property
    def columns(self) -> list[str]:
        return self.preprocessor.features_

    def coverage(self, columns: list[str]) -> Coverage:
        """Which model inputs a frame with these columns lacks, and the share of the training gain they carried."""
        gain = np.asarray(self.booster.feature_importance("gain"), dtype=np.float64)
        share = gain / gain.sum() if gain.sum() > 0 else np.zeros_like(gain)
        have = set(columns)
        missing = [(c, float(w)) for c, w in zip(self.columns, share, strict=True) if c not in have]
        return Coverage(len(self.columns), sorted(missing, key=lambda cw: -cw[1]), list(columns))

    def load_context(self, context) -> None:
        """Build the booster and the SHAP table, and run the table's compiled loop once (compiled or read from
        numba's cache here, not on the first lead)."""
        if self.table is not None:
            self.table.contributions(np.zeros((1, self.table.n_features)))

    # -- prediction
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        """Calibrated probabilities for a frame (or a list of records) of raw model inputs."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.predict_matrix(self.preprocessor.transform(frame))

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The uncalibrated probability (a blend's: of the weighted log-odds)."""
        if self.linear is None:
            return np.asarray(self.booster.predict(X, num_threads=1))
        z = (1 - self.blend) * np.asarray(self.booster.predict(X, raw_score=True, num_threads=1))
        return 1.0 / (1.0 + np.exp(-(z + self.blend * self.linear.logit(X))))

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        return np.clip(self.calibrator.predict(self.raw(X)), 0.0, 1.0)

    def row_values(self, X: np.ndarray) -> np.ndarray | None:
        if self.value_feature and self.value_feature in self.columns:
            return X[:, self.columns.index(self.value_feature)]
        return None

    def score_matrix(
        self, X: np.ndarray, reasons: int = 3, worded: str = "dicts", threads: int = 1
    ) -> Scores:
        """Score, tier, expected value, reasons and per-group contributions for each row of ``X``.

        With reasons, one contributions call: SHAP contributions sum exactly to the raw log-odds. ``worded``:
        ``dicts`` (a dict per reason, the API's), ``table`` (one table of columns with each reason's row,
        /score_columns'), ``text`` (one line per row in ``texts``, batch scoring's) or ``picks`` (not worded, in
        ``picks``: re-scores after events, which word only what a notification carries).
        """
        contrib = self.contributions(X, threads) if reasons else None
        if contrib is not None:
            raw = 1.0 / (1.0 + np.exp(-contrib.sum(axis=1)))
            p = np.clip(self.calibrator.predict(raw), 0.0, 1.0)
        else:
            p = self.predict_matrix(X)
        rv = self.row_values(X)
        ev = (
            self.tiers.quantity(p, rv)
            if self.tiers.method == "expected_value"
            else TierPolicy("expected_value", [], [], self.tiers.value).quantity(p, rv)
        )
        out = Scores(p, np.asarray(self.tiers.assign(p, rv)), np.asarray(ev, dtype=np.float64))
        if contrib is not None:
            c = contrib[:, :-1]
            if worded == "text":
                out.texts = reason_texts(
                    c, X, self.columns, self.words, self.preprocessor.display_value, reasons
                )
                return out
            if worded == "picks":
                out.picks = reason_picks(c, X, self.columns, self.preprocessor.display_value, reasons)
            elif worded == "table":
                out.table = reason_table(
                    c, X, self.columns, self.words, self.preprocessor.display_value, reasons
                )
            else:
                out.reasons = top_reasons(
                    c, X, self.columns, self.words, self.preprocessor.display_value, reasons
                )
            out.groups = group_columns(c, self.columns, self.words)
        return out


@dataclass
class Coverage:
    """A scoring file against the model's inputs: the inputs it lacks (with their share of the training gain)."""

    inputs: int
    missing: list[tuple[str, float]]  # (input, gain share), heaviest first
    columns: list[str]  # the file's columns

    @property
    def missing_weight(self) -> float:
        return sum(w for _, w in self.missing)

    def problem(self, max_share: float, max_weight: float, sep: Any = None) -> str | None:
        """Why scoring this file would be garbage, naming the likely cause; None when it is fine."""
        if not self.missing or (
            len(self.missing) <= max_share * self.inputs and self.missing_weight <= max_weight
        ):
            return None
        names = ", ".join(c for c, _ in self.missing[:8]) + (" …" if len(self.missing) > 8 else "")
        what = (f"the file lacks {len(self.missing)} of the model's {self.inputs} inputs, which carried "
                f"{self.missing_weight:.0%} of its weight in training ({names})")  # fmt: skip
        if len(self.columns) == 1 and self.inputs > 1:
            cause = (f"it was read as a single column ({self.columns[0][:60]!r}): is it separated by another "
                     f"character? The model reads its export with sep={sep or ','!r}")  # fmt: skip
        elif len(self.missing) > self.inputs / 2:
            cause = "most inputs are absent: is this the export the model was trained on?"
        else:
            cause = "were these columns renamed or dropped from the export?"
        return (
            f"{what}; {cause}. Nothing was written; --allow-missing scores it anyway (those inputs unknown)."
        )


@dataclass
class Scores:
    """A batch's scores as columns (row i of each is lead i); worded reasons per row when asked for."""

    score: np.ndarray  # calibrated probability
    tier: np.ndarray  # tier names
    expected_value: np.ndarray
    reasons: list[list[dict]] | None = None  # top positive then negative contributors, worded
    groups: dict[str, np.ndarray] | None = None  # contributions summed per feature group (log-odds)
    texts: list[str] | None = None  # the reasons as one line per row (batch scoring)
    picks: list[list[list]] | None = (
        None  # the reasons not worded: [feature, value, contribution] (re-scores)
    )
    table: dict[str, list] | None = (
        None  # the reasons as one table of columns with their row (/score_columns)
    )

    @property
    def score_100(self) -> np.ndarray:
        return np.round(100 * self.score).astype(np.int64)
