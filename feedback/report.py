"""Monitoring report per motion (compare within a motion, never across): realised conversion by tier and
decile, calibration on realised outcomes, AUC, lift, SLA adherence (B2B), revenue by tier (B2C), feature and
score drift (PSI against the training reference). Self-contained HTML + JSON, and an MLflow monitoring run.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedback.labelled_rows import feature_frame, labelled
from leadscore import motions
from leadscore.config import MotionConfig, load_config
from leadscore.errors import UserError
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


def drift(model, rows: pd.DataFrame) -> tuple[dict[str, float], float]:
    """PSI of every model feature and of the score, served rows against the model's training reference."""
    X = model.preprocessor.transform(feature_frame(rows))
    return feature_psi(model.reference, X, model.columns), score_psi(
        model.reference, rows["score"].to_numpy()
    )


def sla_adherence(rows: pd.DataFrame, conf: MotionConfig) -> dict[str, Any]:
    sla = {r.name: r.sla_minutes for r in conf.routes}
    r = rows.dropna(subset=["contacted_at"])
    r = r[r["route"].map(sla).notna()]
    if r.empty:
        return {"contacts_with_times": 0}
    minutes = (r["contacted_at"] - r["at"]).dt.total_seconds() / 60
    met = minutes <= r["route"].map(sla)
    by_route = met.groupby(r["route"]).mean().round(4).to_dict()
    return {
        "contacts_with_times": int(len(r)),
        "met_share": float(met.mean()),
        "by_route": by_route,
        "median_minutes": float(minutes.median()),
    }


def build(motion: str, store: Store, since: str | None = None) -> Report:
    conf = load_config(motion)
    rows = labelled(store, conf, since)
    if rows is None or rows.empty:
        raise UserError(f"no matured, scored {motion} leads with outcomes yet (score, then ingest outcomes)")
    y, p = rows["label"].to_numpy(), rows["score"].to_numpy()
    core = metrics.core(y, p)
    deciles = metrics.by_decile(y, p)
    tiers = metrics.by_group(y, p, rows["tier"].to_numpy(), rows["label_value"].to_numpy()).rename(
        columns={"group": "tier"}
    )
    order = {t.name: i for i, t in enumerate(conf.tiers.levels)}
    tiers = tiers.sort_values("tier", key=lambda s: s.map(order)).reset_index(drop=True)
    version = rows["version"].mode().iloc[0]
    model, _ = registry.load(f"{motion}/{version}")
    psi_by_feature, psi_score = drift(model, rows)
    psi_table = pd.DataFrame(
        sorted(psi_by_feature.items(), key=lambda kv: -kv[1]), columns=["feature", "psi"]
    )
    drifted = psi_table[psi_table["psi"] > conf.feedback.psi_bound]["feature"].tolist()
    summary: dict[str, Any] = {
        "motion": motion,
        "rows": int(len(rows)),
        "positives": int(y.sum()),
        "model_version": str(version),
        "period": [str(rows["as_of"].min()), str(rows["as_of"].max())],
        **core,
        "top_decile_lift": float(deciles["lift"].iloc[0]) if len(deciles) else None,
        "score_psi": psi_score,
        "max_feature_psi": float(psi_table["psi"].max()) if len(psi_table) else 0.0,
        "drifted_features": drifted,
        "psi_bound": conf.feedback.psi_bound,
        "calibration_decayed": core["ece"] > conf.feedback.ece_bound,
        "ece_bound": conf.feedback.ece_bound,
    }
    if motions.get(motion).family == "b2c":
        summary["revenue_by_tier"] = dict(zip(tiers["tier"], tiers["revenue"].round(2), strict=True))
        summary["order_value_by_tier"] = {
            t: float(v)
            for t, v in zip(
                tiers["tier"],
                (tiers["revenue"] / tiers["conversions"].replace(0, np.nan)).round(2),
                strict=True,
            )
        }
    else:
        summary["sla"] = sla_adherence(rows, conf)
    images = {
        "reliability.png": plots.calibration_curve(
            y, {"served score": p}, f"calibration on outcomes — {motion}"
        ),
        "gains.png": plots.gains_chart(y, {"served score": p}, f"realised — {motion}"),
        "tiers.png": plots.bars(tiers, "tier", "conversion", f"realised conversion by tier — {motion}"),
        "psi.png": plots.shap_summary(
            psi_table.set_index("feature")["psi"], f"feature drift (PSI) — {motion}"
        ),
    }
    return Report(motion, summary, {"tiers": tiers, "deciles": deciles, "psi": psi_table}, images)


def write(report: Report, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(report.summary, indent=2, default=str))
    imgs = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(b).decode()}" alt="{html.escape(n)}">'
        f"<figcaption>{html.escape(n)}</figcaption></figure>"
        for n, b in report.images.items()
    )
    tables = "".join(
        f"<h2>{html.escape(n)}</h2>{t.to_html(index=False, float_format=lambda v: f'{v:.4f}')}"
        for n, t in report.tables.items()
    )
    facts = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in report.summary.items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>leadscore — {report.motion} monitoring</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}}table{{border-collapse:collapse;margin:1rem 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}figure{{display:inline-block;margin:0.5rem}}</style>
</head><body><h1>{report.motion} — outcomes against scores</h1>
<p>Compared within the {report.motion} motion only.</p><table>{facts}</table>{imgs}{tables}</body></html>"""
    (out / "report.html").write_text(page)
    return out / "report.html"


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
