"""Evaluation plots logged as MLflow artifacts (and reused by the feedback report)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def calibration_curve(y: np.ndarray, curves: dict[str, np.ndarray], title: str, bins: int = 10) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    for name, p in curves.items():
        idx = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
        xs, ys = [], []
        for b in range(bins):
            m = idx == b
            if m.sum() >= 5:
                xs.append(p[m].mean())
                ys.append(y[m].mean())
        ax.plot(xs, ys, marker="o", label=name)
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend()
    return _png(fig)


def gains_chart(y: np.ndarray, curves: dict[str, np.ndarray], title: str) -> bytes:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4))
    share = np.arange(1, len(y) + 1) / max(len(y), 1)
    a1.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="random")
    for name, p in curves.items():
        ys = np.asarray(y)[np.argsort(-np.asarray(p), kind="stable")]
        gain = np.cumsum(ys) / max(ys.sum(), 1)
        a1.plot(share, gain, label=name)
        dec = np.array_split(ys, 10)
        base = max(ys.mean(), 1e-12)
        a2.plot(range(1, 11), [d.mean() / base for d in dec], marker="o", label=name)
    a1.set(
        xlabel="share of leads contacted (by score)", ylabel="share of conversions", title=f"gains — {title}"
    )
    a2.axhline(1, ls="--", c="grey", lw=1)
    a2.set(xlabel="decile (1 = top)", ylabel="lift", title="lift by decile")
    a1.legend()
    return _png(fig)


def shap_summary(mean_abs: pd.Series, title: str, top: int = 20) -> bytes:
    s = mean_abs.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(s) + 1.2))
    ax.barh(s.index, s.values, color="#4477aa")
    ax.set(xlabel="mean |SHAP| (log-odds)", title=title)
    return _png(fig)


def bars(frame: pd.DataFrame, x: str, y: str, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.bar(frame[x].astype(str), frame[y], color="#228833")
    ax.set(xlabel=x, ylabel=y, title=title)
    return _png(fig)


def psi_bars(psi: pd.Series, bound: float, title: str, top: int = 20) -> bytes:
    """Feature drift: PSI per feature (largest first), the alert bound drawn."""
    s = psi.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(s) + 1.2))
    ax.barh(s.index, s.values, color=["#cc3311" if v > bound else "#4477aa" for v in s.values])
    ax.axvline(bound, color="#333333", linestyle="--", linewidth=1, label=f"alert bound {bound:g}")
    ax.set(xlabel="PSI (population stability index)", title=title)
    ax.legend(loc="lower right")
    return _png(fig)
