"""Monitoring report per motion (compare within a motion, never across), for a RevOps lead and a data scientist:
alerts first (what crossed a bound, and what to do), then realised conversion and calibration by tier and by
decile, the trend per scoring week (AUC, ECE and its noise floor, conversion by tier, score PSI), SLA adherence
by route (B2B), revenue by tier (B2C) and feature drift (PSI against the training reference). HTML from an
autoescaped jinja2 template, a JSON summary holding everything the page shows, and an MLflow monitoring run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedback.labelled_rows import feature_frame, labelled
from leadscore import motions
from leadscore.config import MotionConfig, load_config
from leadscore.errors import UserError
from leadscore.progress import stage
from leadscore.store import Store
from model import metrics, registry
from model.drift import feature_psi, score_psi
from training import plots


@dataclass
class Report:
    motion: str
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    images: dict[str, bytes]
    alerts: list[dict[str, str]] = field(default_factory=list)


def drift(model, rows: pd.DataFrame) -> tuple[dict[str, float], float]:
    """PSI of every model feature and of the score, served rows against the model's training reference."""
    X = model.preprocessor.transform(feature_frame(rows))
    return feature_psi(model.reference, X, model.columns), score_psi(
        model.reference, rows["score"].to_numpy()
    )


def sla_adherence(rows: pd.DataFrame, conf: MotionConfig) -> pd.DataFrame:
    """Per route with an SLA: contacts with a recorded time, the share met, and the median minutes to contact."""
    sla = {r.name: r.sla_minutes for r in conf.routes}
    r = rows.dropna(subset=["contacted_at"])
    r = r[r["route"].map(sla).notna()]
    columns = ["route", "sla_minutes", "contacts", "met_share", "median_minutes"]
    if r.empty:
        return pd.DataFrame(columns=columns)
    minutes = (r["contacted_at"] - r["at"]).dt.total_seconds() / 60
    g = pd.DataFrame({"route": r["route"], "met": minutes <= r["route"].map(sla), "minutes": minutes})
    out = g.groupby("route").agg(
        contacts=("met", "size"), met_share=("met", "mean"), median_minutes=("minutes", "median")
    )
    out = out.reset_index().assign(sla_minutes=lambda d: d["route"].map(sla))
    return out[columns]


def trend(rows: pd.DataFrame, model, tier_order: list[str]) -> pd.DataFrame:
    """Per scoring week (the Monday of ``as_of``): rows, AUC, ECE beside its noise floor (what right scores show
    on that week's rows: a week of 300 outcomes reads 0.05 for noise alone), score PSI and conversion by tier."""
    out = []
    for week, g in rows.groupby(rows["as_of"].dt.to_period("W-SUN").dt.start_time):
        y, p = g["label"].to_numpy(), g["score"].to_numpy()
        m = metrics.core(y, p)
        conv = g.groupby("tier")["label"].mean()
        out.append({"week": week.date().isoformat(), "rows": len(g), "positives": int(y.sum()), "auc": m["auc"],
                    "ece": m["ece"], "ece_floor": metrics.ece_noise_floor(p),
                    "score_psi": score_psi(model.reference, p)}
                   | {f"conversion_{t}": float(conv[t]) if t in conv else None for t in tier_order})  # fmt: skip
    return pd.DataFrame(out)


def alerts(s: dict[str, Any], conf: MotionConfig, sla: pd.DataFrame, trained_auc: float | None) -> list[dict]:
    """What crossed a bound, worst first, each with what to do about it."""
    fb, motion, found = conf.feedback, conf.motion, []
    if s["calibration_decayed"]:
        noise = (f"; on {s['rows']:,} outcomes a calibrated model's noise alone reaches {s['ece_limit']:.3f} one "
                 "time in 20" if s["ece_limit"] > fb.ece_bound else "")  # fmt: skip
        found.append({"what": f"calibration has decayed: ECE {s['ece']:.3f} on outcomes (bound {fb.ece_bound}{noise})",
                      "do": f"retrain on recent outcomes: leadscore feedback retrain {motion}"})  # fmt: skip
    if trained_auc is not None:
        drop = metrics.auc_drop_limit(
            trained_auc, s["positives"], s["rows"] - s["positives"], fb.auc_drop_bound
        )
        if s["auc"] < trained_auc - drop:
            noise = (f"; on {s['rows']:,} outcomes a model ranking as it did falls {drop:.3f} short by noise alone "
                     "one time in 20" if drop > fb.auc_drop_bound else "")  # fmt: skip
            found.append({"what": f"ranking has weakened: AUC {s['auc']:.3f} on outcomes vs {trained_auc:.3f} at "
                                  f"training (bound −{fb.auc_drop_bound}{noise})",
                          "do": "retrain, and look at the drifted features below: "
                                f"leadscore feedback retrain {motion}"})  # fmt: skip
    if s["drifted_features"]:
        names = ", ".join(s["drifted_features"][:5]) + (" …" if len(s["drifted_features"]) > 5 else "")
        found.append({"what": f"{len(s['drifted_features'])} feature(s) drifted past PSI {fb.psi_bound}: {names}",
                      "do": "check the sources that feed them (a tracking change, a new campaign or segment); "
                            "retrain if the shift is real"})  # fmt: skip
    if s["score_psi"] > fb.psi_bound:
        found.append({"what": f"the score distribution moved: PSI {s['score_psi']:.3f} (bound {fb.psi_bound})",
                      "do": "tier shares have shifted: review the tier thresholds and the routes' capacity"})  # fmt: skip
    for r in sla.itertuples():
        if r.met_share < SLA_TARGET:
            found.append({"what": f"SLA missed on {r.route}: {r.met_share:.0%} of {r.contacts:,} contacts within "
                                  f"{r.sla_minutes:g} min (target {SLA_TARGET:.0%})",
                          "do": f"staff or re-route {r.route}: median contact took {r.median_minutes:,.0f} min"})  # fmt: skip
    return found


SLA_TARGET = 0.9  # share of contacts within the route's SLA below which the report raises an alert


def build(motion: str, store: Store, since: str | None = None) -> Report:
    conf = load_config(motion)
    with stage("matured scores joined to their outcomes"):
        rows = labelled(store, conf, since)
    if rows is None or rows.empty:
        raise UserError(f"no matured, scored {motion} leads with outcomes yet (score, then ingest outcomes)")
    y, p = rows["label"].to_numpy(), rows["score"].to_numpy()
    core = metrics.core(y, p)
    decayed, ece_limit = metrics.calibration_decayed(y, p, conf.feedback.ece_bound)
    deciles = metrics.by_decile(y, p)
    tier_order = [t.name for t in conf.tiers.levels]
    tiers = metrics.by_group(y, p, rows["tier"].to_numpy(), rows["label_value"].to_numpy()).rename(
        columns={"group": "tier"}
    )
    tiers = tiers.sort_values("tier", key=lambda s: s.map({t: i for i, t in enumerate(tier_order)}))
    tiers = tiers.reset_index(drop=True)
    version = rows["version"].mode().iloc[0]
    model, _ = registry.load(f"{motion}/{version}")
    with stage("drift against the training reference"):
        psi_by_feature, psi_score = drift(model, rows)
    psi_table = pd.DataFrame(
        sorted(psi_by_feature.items(), key=lambda kv: -kv[1]), columns=["feature", "psi"]
    )
    drifted = psi_table[psi_table["psi"] > conf.feedback.psi_bound]["feature"].tolist()
    b2c = motions.get(motion).family == "b2c"
    sla = sla_adherence(rows, conf) if not b2c else pd.DataFrame()
    summary: dict[str, Any] = {
        "motion": motion,
        "rows": int(len(rows)),
        "positives": int(y.sum()),
        "model_version": str(version),
        "period": [str(rows["as_of"].min()), str(rows["as_of"].max())],
        **{k: v for k, v in core.items() if k not in ("n", "positives")},
        "top_decile_lift": float(deciles["lift"].iloc[0]) if len(deciles) else None,
        "score_psi": psi_score,
        "max_feature_psi": float(psi_table["psi"].max()) if len(psi_table) else 0.0,
        "drifted_features": drifted,
        "psi_bound": conf.feedback.psi_bound,
        "calibration_decayed": decayed,
        "ece_bound": conf.feedback.ece_bound,
        "ece_limit": ece_limit,  # the bound, or above it what noise alone reaches on these few outcomes
    }
    with stage("trend by scoring week"):
        tables = {"tiers": tiers, "deciles": deciles, "trend": trend(rows, model, tier_order)}
    if b2c:
        summary["revenue_by_tier"] = dict(zip(tiers["tier"], tiers["revenue"].round(2), strict=True))
    else:
        tables["sla"] = sla
    tables["psi"] = psi_table
    with stage("charts"):
        images = {
            "reliability.png": plots.calibration_curve(
                y, {"served score": p}, f"calibration on outcomes — {motion}"
            ),
            "gains.png": plots.gains_chart(y, {"served score": p}, f"realised — {motion}"),
            "tiers.png": plots.bars(tiers, "tier", "conversion", f"realised conversion by tier — {motion}"),
            "psi.png": plots.psi_bars(
                psi_table.set_index("feature")["psi"], conf.feedback.psi_bound, f"feature drift — {motion}"
            ),
        }
    found = alerts(summary, conf, sla, registry.test_auc(motion, str(version)))
    summary["alerts"] = found
    summary["tables"] = {name: _records(t) for name, t in tables.items()}
    return Report(motion, summary, tables, images, found)


def _records(t: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(t.to_json(orient="records", date_format="iso"))


def write(report: Report, out: str | Path) -> Path:
    """``report.html`` (self-contained: charts inlined) and ``summary.json`` into ``out``."""
    import base64

    from jinja2 import Environment, PackageLoader, StrictUndefined

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(report.summary, indent=2, default=str))
    env = Environment(loader=PackageLoader("feedback"), autoescape=True, undefined=StrictUndefined)
    env.filters["num"] = number
    page = env.get_template("report.html.j2").render(
        r=report,
        s=report.summary,
        tables=report.tables,
        images={n: base64.b64encode(b).decode() for n, b in report.images.items()},
    )
    (out / "report.html").write_text(page)
    return out / "report.html"


SHARES = ("conversion", "share", "met_share", "mean_score", "cumulative_gain")
COUNTS = ("n", "rows", "positives", "contacts", "conversions")


def number(v: Any, column: str = "") -> str:
    """A table cell or a figure as a person reads it: shares as percentages, counts with separators, the rest
    to three decimals; missing as a dash."""
    if v is None or isinstance(v, str):
        return v or "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and math.isnan(v):
        return "—"
    if column in COUNTS or isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if column in SHARES or column.startswith("conversion_"):
        return f"{v:.1%}"
    if "revenue" in column or "value" in column:
        return f"{v:,.2f}"
    return f"{v:,.3f}"


def log_to_mlflow(report: Report, out: Path) -> str:
    import mlflow

    registry.setup_mlflow()
    mlflow.set_experiment(f"leadscore-monitoring-{report.motion}")
    with mlflow.start_run(run_name=f"monitor-{report.motion}") as run:
        mlflow.set_tags({"motion": report.motion, "kind": "monitoring"})
        mlflow.log_metrics(
            {
                k: float(v)
                for k, v in report.summary.items()
                if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
            }
        )
        mlflow.log_artifacts(str(out), "report")
    return run.info.run_id
