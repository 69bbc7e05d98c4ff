"""Quality on real data: each shared data set through its spec (no per-data-set tuning in code), beside the
two baselines and a default-settings LightGBM trained on the same rows and scored on the same test fold. The gap
to the best of them comes with a paired bootstrap 95% interval, so a gap inside the noise reads as one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np

from leadscore.config import load_config
from model import metrics
from model.exports import load_spec
from training.flat_export import read_flat
from training.pipelines import fit_spec

SPECS = Path(__file__).resolve().parent.parent / "conf" / "specs"


def one(name: str) -> dict:
    spec = load_spec(SPECS / f"{name}.yaml")
    conf = load_config(spec.motion)
    f = fit_spec(spec, conf)
    X, y, _ = read_flat(spec)
    X = X.drop(columns=[fl.column for fl in f.flags])
    pre = f.model.preprocessor
    Xm = pre.transform(X)
    fit_rows, te = np.r_[f.split.train, f.split.valid], f.split.test
    cats = [pre.features_.index(c) for c in pre.categorical_]
    default = lgb.LGBMClassifier(verbose=-1, random_state=0).fit(
        Xm[fit_rows], y[fit_rows], categorical_feature=cats
    )
    preds = f.test_predictions | {"lightgbm_default": default.predict_proba(Xm[te])[:, 1]}
    m = dict(f.metrics) | {"lightgbm_default": metrics.core(y[te], preds["lightgbm_default"])}
    best_peer = max(("logistic", "naive_bayes", "lightgbm_default"), key=lambda k: m[k]["auc"])
    gap, low, high = metrics.auc_difference_ci(y[te], preds["model"], preds[best_peer])
    # A model fitted before the test period cannot know its base rate: the shift bounds every model's ECE.
    shift = float(np.mean(y[te]) - np.mean(y[fit_rows]))
    return {
        "data": name,
        "rows": int(len(y)),
        "test_rows": int(len(te)),
        "split": f.params["split"],
        "calibration": f.params["calibration"],
        "leakage_excluded": [fl.column for fl in f.flags],
        **{f"{k}_{s}": round(v[s], 4) for k, v in m.items() for s in ("auc", "pr_auc", "brier", "ece")},
        "base_rate_fit": round(float(np.mean(y[fit_rows])), 4),
        "base_rate_test": round(float(np.mean(y[te])), 4),
        "base_rate_shift": round(shift, 4),
        **{f"{k}_base_rate_gap": round(metrics.base_rate_gap(y[te], preds[k]), 4) for k in preds},
        "best_peer": best_peer,
        "auc_gap_vs_best_peer": round(gap, 4),
        "auc_gap_ci95": [round(low, 4), round(high, 4)],
    }


def main(names: list[str]) -> list[dict]:
    return [one(n) for n in names]


if __name__ == "__main__":
    names = sys.argv[1:] or ["x_education", "bank_full", "bank_additional", "sales_win_loss", "maven_crm"]
    print(json.dumps(main(names), indent=2))
