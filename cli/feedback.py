"""``leadscore feedback``: the closed loop — ingest outcomes, report, retrain on evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import Motion, MotionChoice, console, friendly, summary

feedback_app = typer.Typer(
    help="Closed loop: ingest outcomes, report, retrain on evidence.", no_args_is_help=True
)


@feedback_app.command("ingest")
@friendly
def feedback_ingest(
    outcomes: Annotated[Path, typer.Option(help="canonical outcomes table (.csv or .parquet)")],
    motion: Annotated[
        MotionChoice | None, typer.Option(help="the motion (default: from the columns)")
    ] = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="write bad rows (with reasons) here and load the rest")
    ] = None,
):
    """Validated, idempotent, transactional outcome ingestion into the project's store."""
    from leadscore.outcomes import ingest_file
    from leadscore.store import Store

    r = ingest_file(outcomes, Store.default(), motion.value if motion else None, quarantine)
    summary(f"ingested {outcomes}", vars(r))


@feedback_app.command("report")
@friendly
def feedback_report(
    motion: Motion,
    out: Annotated[Path, typer.Option(help="output folder")],
    since: Annotated[str | None, typer.Option(help="only scores as of this date or later")] = None,
):
    """HTML + JSON monitoring report for one motion, also logged as an MLflow monitoring run."""
    from feedback.report import build, log_to_mlflow, number, write
    from leadscore.store import Store

    rep = build(motion.value, Store.default(), since)
    page = write(rep, out)
    run = log_to_mlflow(rep, out)
    s = rep.summary
    keys = ("rows", "positives", "auc", "ece", "top_decile_lift", "score_psi", "max_feature_psi")
    rows = {k.replace("_", " "): number(s[k], k) for k in keys}
    rows["drifted features"] = ", ".join(s["drifted_features"]) or "none"
    rows["alerts"] = str(len(rep.alerts))
    summary(f"{motion.value} monitoring → {page} (MLflow run {run[:8]})", rows)
    for a in rep.alerts:
        console.print(f"[bold yellow]alert:[/] {a['what']} — {a['do']}", highlight=False)


@feedback_app.command("retrain")
@friendly
def feedback_retrain(
    motion: Motion,
    data: Annotated[
        Path | None, typer.Option(help="canonical history to train on besides feedback rows")
    ] = None,
    force: Annotated[bool, typer.Option(help="retrain even without evidence")] = False,
):
    """Decide from evidence whether to retrain; if so train a challenger and promote it through the gate."""
    from feedback.retrain import retrain

    d = retrain(motion.value, data=data, force=force)
    summary(
        f"{motion.value}: {'retrained' if d.retrain else 'no retrain'}",
        {
            "reasons": "; ".join(d.reasons),
            "challenger": d.challenger,
            "promoted": d.promoted,
            "gate": "; ".join(d.gate),
        },
    )
