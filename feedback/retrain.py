"""Retrain on evidence, not on a calendar: enough new labels, drift past a bound, or calibration/AUC decay.

A challenger is trained on history (the canonical data, if given) plus the feedback rows scored before the
evaluation window; champion and challenger are then compared on the same most recent outcomes (never seen
by the challenger) through the registry's gated promotion. Every decision is recorded with its reasons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.definitions import feature_set
from feedback.labelled_rows import feature_frame, labelled
from feedback.report import drift
from leadscore.config import MotionConfig, load_config
from leadscore.errors import UserError
from leadscore.progress import stage
from leadscore.store import Store
from model import metrics, registry
from training.fit import fit_and_evaluate
from training.pipelines import motion_frame, motion_rows
from training.track import log_and_register


@dataclass
class RetrainDecision:
    motion: str
    retrain: bool
    reasons: list[str]
    challenger: str | None = None
    promoted: bool = False
    gate: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def evidence(motion: str, store: Store, conf: MotionConfig) -> tuple[list[str], pd.DataFrame, dict]:
    rows = labelled(store, conf)
    if rows.empty:
        return [], rows, {}
    champion = registry.alias_version(motion, registry.CHAMPION)
    reasons: list[str] = []
    facts: dict[str, float] = {"labelled_rows": int(len(rows))}
    last = _last_retrain(store, motion)
    new = rows[rows["at"] > pd.Timestamp(last).tz_convert(None)] if last else rows
    facts["new_labelled_rows"] = int(len(new))
    if len(new) >= conf.feedback.min_new_labels:
        reasons.append(f"{len(new)} new labelled rows ≥ {conf.feedback.min_new_labels}")
    if champion:
        served = rows[rows["version"] == champion]
        if len(served) and served["label"].nunique() == 2:
            model, _ = registry.load(f"{motion}/{champion}")
            m = metrics.core(served["label"].to_numpy(), served["score"].to_numpy())
            psi, psi_score = drift(model, served)
            worst = max(psi.items(), key=lambda kv: kv[1]) if psi else ("", 0.0)
            facts |= {
                "realised_auc": m["auc"],
                "realised_ece": m["ece"],
                "max_psi": worst[1],
                "score_psi": psi_score,
            }
            if worst[1] > conf.feedback.psi_bound:
                reasons.append(f"feature drift: PSI {worst[1]:.3f} on {worst[0]} > {conf.feedback.psi_bound}")
            decayed, limit = metrics.calibration_decayed(
                served["label"].to_numpy(), served["score"].to_numpy(), conf.feedback.ece_bound
            )
            facts["ece_limit"] = limit
            if decayed:
                noise = (
                    ""
                    if limit == conf.feedback.ece_bound
                    else (
                        f" (the bound {conf.feedback.ece_bound} raised to what a calibrated model's noise alone "
                        f"reaches on {len(served):,} outcomes one time in 20)"
                    )
                )
                reasons.append(f"calibration decay: ECE {m['ece']:.3f} > {limit:.3f}{noise}")
            trained_auc = registry.test_auc(motion, champion)
            if trained_auc is not None:
                positives = int(served["label"].sum())
                drop = metrics.auc_drop_limit(
                    trained_auc, positives, len(served) - positives, conf.feedback.auc_drop_bound
                )
                facts["auc_drop_limit"] = drop
                if m["auc"] < trained_auc - drop:
                    reasons.append(
                        f"AUC decay: {m['auc']:.3f} on outcomes vs {trained_auc:.3f} at training (limit −{drop:.3f})"
                    )
    return reasons, rows, facts


def _last_retrain(store: Store, motion: str) -> str | None:
    r = store.query(
        "SELECT MAX(at) AS at FROM retrain_decisions WHERE motion = ? AND decision = 'retrain'", (motion,)
    )
    return r[0]["at"] if r and r[0]["at"] else None


def split_recent(rows: pd.DataFrame, share: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Older rows may train; the most recent ``share`` (by scoring time) only evaluates."""
    cut = rows["as_of"].quantile(1 - share)
    return rows[rows["as_of"] < cut], rows[rows["as_of"] >= cut]


def retrain(
    motion: str,
    store: Store | None = None,
    data: str | Path | None = None,
    force: bool = False,
    conf: MotionConfig | None = None,
) -> RetrainDecision:
    """Weigh the evidence; when it says so, fit a challenger and put it through the promotion gate. The decision
    is recorded in ``store`` (default: the settings' store, closed afterwards)."""
    with Store.borrowed(store) as owned:
        return _retrain(motion, owned, data, force, conf)


def _retrain(
    motion: str, store: Store, data: str | Path | None, force: bool, conf: MotionConfig | None
) -> RetrainDecision:
    conf = conf or load_config(motion)
    with stage("weighing the evidence (new labels, drift, decay)"):
        reasons, rows, facts = evidence(motion, store, conf)
    if force:
        reasons.append("forced by the operator")
    d = RetrainDecision(motion, bool(reasons), reasons, metrics=facts)
    if not reasons:
        d.reasons = ["no evidence: too few new labels, no drift, no decay"]
        _record(store, d)
        return d
    if rows.empty or rows["label"].nunique() < 2:
        raise UserError(
            f"{motion}: evidence says retrain, but there are no labelled feedback rows to evaluate on"
        )
    older, recent = split_recent(rows)
    train_X = feature_frame(older)
    train_y, train_v = older["label"].to_numpy(), older["label_value"].to_numpy()
    if data is not None:  # history: the point-in-time training set of the canonical data
        hx, hy, hv = motion_frame(motion, data, conf)
        train_X = pd.concat([hx, train_X], ignore_index=True)
        train_y, train_v = np.r_[hy, train_y], np.r_[hv, train_v]
    drop = [c for c in conf.model_inputs_exclude if c in train_X.columns]
    rows = motion_rows(train_X.drop(columns=drop), train_y, train_v, conf)
    with stage("fitting the challenger"):
        fitted = fit_and_evaluate(rows, conf, name=motion, fs=feature_set(conf.feature_set))
    with stage("logging to MLflow and registering"):
        result = log_and_register(
            fitted, conf, {"source": "feedback-retrain", "reasons": "; ".join(reasons)[:500]}
        )
    d.challenger = result.version
    eval_rows = feature_frame(recent).assign(label=recent["label"].to_numpy())
    if result.alias == registry.CHAMPION:  # there was no champion: the first version serves
        d.promoted, d.gate = True, ["first version of this model"]
    else:
        with stage("the promotion gate on recent outcomes"):
            decision = registry.promote(
                motion, result.version, data=eval_rows, why="feedback retrain: " + "; ".join(reasons)
            )
        d.promoted, d.gate, d.metrics["gate"] = decision.promoted, decision.reasons, decision.metrics
    _record(store, d)
    return d


def _record(store: Store, d: RetrainDecision) -> None:
    store.execute(
        "INSERT INTO retrain_decisions (at, motion, decision, reasons, challenger, promoted, metrics) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            datetime.now(UTC).isoformat(timespec="seconds"),
            d.motion,
            "retrain" if d.retrain else "skip",
            json.dumps(d.reasons + d.gate),
            d.challenger,
            int(d.promoted),
            json.dumps(d.metrics, default=float),
        ),
    )
