"""Quality on real data, over repeated splits: each shared data set through its spec (no per-data-set tuning in
code; the spec path's default search), beside its three peers (logistic regression, naive Bayes, LightGBM with
default settings) trained on the same rows and scored on the same test fold, for several split seeds.

Per data set: mean ± sd of AUC and ECE over the splits (with the ECE a perfectly calibrated model would show on
a test fold of that size, its noise floor), the ECE of all the splits' test predictions pooled (with its floor),
and the paired AUC difference to each peer with a 95%
interval. Splits share rows, so their differences are correlated: the interval is Nadeau and Bengio's corrected
resampled t interval (variance × (1/J + n_test/n_train)), wider than a naive one, so a 0.001 gap is not read as
a win. A spec with a timestamp splits out of time, the same split for every seed: there the seeds vary only the
models' randomness, and the note says so.

``python -m bench.quality [--seeds N] [NAME ...]`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from leadscore.config import load_config
from model import metrics
from model.exports import load_spec
from training.pipelines import fit_spec

SPECS = Path(__file__).resolve().parent.parent / "conf" / "specs"
PEERS = ("logistic", "naive_bayes", "lightgbm_default")
NAMES = ["x_education", "bank_full", "bank_additional", "sales_win_loss", "maven_crm"]


def one_split(name: str, seed: int) -> dict:
    spec = load_spec(SPECS / f"{name}.yaml")
    conf = load_config(spec.motion)
    conf = conf.model_copy(update={"model": conf.model.model_copy(update={"seed": seed})})
    t0 = time.perf_counter()
    f = fit_spec(spec, conf)
    return {
        "seed": seed,
        "seconds": time.perf_counter() - t0,
        "split": f.params["split"],
        "rows_fit": f.params["rows_train"] + f.params["rows_valid"],
        "rows_test": f.params["rows_test"],
        "blend": f.params["blend_linear_weight"],
        "candidates": f.params["search_candidates"],
        **{f"{k}_{s}": f.metrics[k][s] for k in ("model", *PEERS) for s in ("auc", "ece")},
        "model_ece_floor": metrics.ece_noise_floor(f.test_predictions["model"]),
        "_test": (f.test_labels, f.test_predictions["model"]),
    }


def corrected_interval(diffs: np.ndarray, test_over_train: float, level: float = 0.95) -> tuple[float, float]:
    """Nadeau–Bengio: the mean of paired differences over J overlapping splits ± t · sqrt((1/J + n_te/n_tr)·s²)."""
    j = len(diffs)
    if j < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf((1 + level) / 2, j - 1) * np.sqrt((1 / j + test_over_train) * np.var(diffs, ddof=1))
    return float(diffs.mean() - half), float(diffs.mean() + half)


def summarise(name: str, runs: list[dict]) -> dict:
    def col(key: str) -> np.ndarray:
        return np.array([r[key] for r in runs], dtype=np.float64)

    ratio = runs[0]["rows_test"] / runs[0]["rows_fit"]
    out: dict = {"data": name, "splits": len(runs), "split": runs[0]["split"], "rows": runs[0]["rows_fit"]
                 + runs[0]["rows_test"], "train_seconds_max": round(float(col("seconds").max()), 1),
                 "blend_used": int(sum(r["blend"] > 0 for r in runs)),
                 "candidates_mean": round(float(col("candidates").mean()), 1)}  # fmt: skip
    for k in ("model", *PEERS):
        for s in ("auc", "ece"):
            out[f"{k}_{s}_mean"] = round(float(col(f"{k}_{s}").mean()), 4)
            out[f"{k}_{s}_sd"] = round(float(col(f"{k}_{s}").std(ddof=1)) if len(runs) > 1 else 0.0, 4)
    out["model_ece_floor_mean"] = round(float(col("model_ece_floor").mean()), 4)
    # every split's test predictions pooled: one fold's ECE carries noise of about its floor (0.02 on 2,300 rows),
    # and ECE only grows with noise; pooled over the splits' out-of-sample predictions, the floor falls by √J
    labels = np.concatenate([r["_test"][0] for r in runs])
    pooled = np.concatenate([r["_test"][1] for r in runs])
    out["model_ece_pooled"] = round(metrics.ece(labels, pooled), 4)
    out["model_ece_pooled_floor"] = round(metrics.ece_noise_floor(pooled), 4)
    for p in PEERS:
        d = col("model_auc") - col(f"{p}_auc")
        low, high = corrected_interval(d, ratio)
        out[f"gap_{p}"] = round(float(d.mean()), 4)
        out[f"gap_{p}_ci95"] = [round(low, 4), round(high, 4)]
    best = max(PEERS, key=lambda p: out[f"{p}_auc_mean"])
    out["best_peer"] = best
    out["gap_best_peer"], out["gap_best_peer_ci95"] = out[f"gap_{best}"], out[f"gap_{best}_ci95"]
    if runs[0]["split"] != "stratified":
        out["note"] = "out-of-time: one split; the seeds vary the models' randomness only"
    return out


def main(names: list[str], seeds: int) -> list[dict]:
    return [summarise(n, [one_split(n, s) for s in range(seeds)]) for n in names]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("names", nargs="*", default=NAMES)
    a = ap.parse_args()
    print(json.dumps(main(a.names, a.seeds), indent=2))
