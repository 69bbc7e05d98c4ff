"""The ``leadscore`` console command: one thin Typer command per stage of the flow.

Logic lives in the packages; commands only parse arguments, show progress and print a summary.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadscore import motions
from leadscore.errors import UserError
from leadscore.schema import SchemaError
from leadscore.settings import PROJECT_ROOT
from serving import serve_command

app = typer.Typer(
    help="Calibrated lead scoring for B2B, B2C and hybrid motions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Registry: list, promote (gated), roll back.", no_args_is_help=True)
feedback_app = typer.Typer(
    help="Closed loop: ingest outcomes, report, retrain on evidence.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
app.add_typer(feedback_app, name="feedback")
console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable)


def friendly(fn: F) -> F:
    """Known failures (bad data, bad spec, missing file, refused gate) end with a clear message, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, SchemaError, FileNotFoundError, ValueError) as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not sys.stderr.isatty(),
    )


def summary(title: str, rows: Mapping[Any, object]) -> None:
    t = Table(title=title, show_header=False)
    for k, v in rows.items():
        t.add_row(str(k), str(v))
    Console().print(t)


MotionChoice = enum.Enum("MotionChoice", {n: n for n in motions.NAMES}, type=str)  # type: ignore[misc]
Motion = Annotated[MotionChoice, typer.Argument(help="the motion", show_default=False)]


@app.command()
@friendly
def generate(
    motion: Motion,
    leads: Annotated[int, typer.Option(help="leads (B2B) or customers (B2C)")] = 10_000,
    seed: int = 0,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("data/synth"),
    scale: Annotated[float | None, typer.Option(help="events per lead (B2B) / session rate (B2C)")] = None,
):
    """Write a motion's canonical tables as Parquet, deterministic for a seed."""
    from synthetic import generate as gen

    if leads <= 0:
        raise UserError("--leads must be positive")
    with progress_bar() as bar:
        task = bar.add_task(f"generating {motion.value}", total=leads)
        written = gen(motion.value, leads, seed, out, scale=scale, progress=lambda k: bar.advance(task, k))
    summary(f"generated {motion.value} (seed {seed}) → {out}", written.tables)


@app.command()
@friendly
def features(
    motion: Motion,
    data: Annotated[Path, typer.Option(help="folder of canonical tables")],
    out: Annotated[Path, typer.Option(help="output .parquet")],
    as_of: Annotated[str | None, typer.Option(help="point in time (default: latest event)")] = None,
    materialize: Annotated[bool, typer.Option(help="also write the online store as of this time")] = False,
):
    """Point-in-time features for every entity as of a timestamp (only rows with time ≤ as-of are used)."""
    from features.historical import features_as_of, latest_time
    from features.materialize import materialize as write_online
    from features.online_store import open_store
    from features.prepare import prepare
    from leadscore.config import load_config
    from leadscore.schema import load_dataset
    from leadscore.settings import Settings
    from leadscore.times import epoch_seconds

    name = motion.value
    conf = load_config(name)
    p = prepare(name, load_dataset(data, name))
    t = epoch_seconds(as_of) if as_of else latest_time(p)
    frame = features_as_of(p, t, conf)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    rows = {
        "entities": len(frame),
        "features": frame.shape[1] - 2,
        "as_of": str(frame["as_of"].iloc[0]) if len(frame) else t,
    }
    rows |= {f"dropped: {k}": v for k, v in p.drops.counts.items()}
    if materialize:
        s = Settings.load()
        s.ensure_home()
        store = open_store(s.online_store_url)
        rows["online store entities"] = write_online(p, t, conf, store)
        store.close()
    summary(f"{name} features → {out}", rows)


@app.command()
@friendly
def train(
    motion: Annotated[MotionChoice | None, typer.Argument(help="the motion (canonical data)")] = None,
    data: Annotated[Path | None, typer.Option(help="canonical folder, or a flat file with --spec")] = None,
    spec: Annotated[Path | None, typer.Option(help="a data-set spec (bring your own data)")] = None,
    search: Annotated[int, typer.Option(help="optuna trials (0 = sensible defaults)")] = 0,
):
    """Train, evaluate beside two baselines, log to MLflow and register (first version → champion)."""
    from training.pipelines import train_motion, train_spec

    if spec is None and motion is None:
        raise UserError(f"give a motion ({', '.join(motions.NAMES)}) with --data, or --spec SPEC.yaml")
    if spec is not None:
        with console.status(f"training from spec {spec}"):
            r = train_spec(spec, data, search)
    else:
        assert motion is not None
        if data is None:
            raise UserError("--data DIR is required with a motion")
        with console.status(f"training {motion.value} on {data}"):
            r = train_motion(motion.value, data, search)
    f = r.fitted
    t = Table(
        title=f"{r.name} v{r.version} → {r.alias}  ({f.params['split']} split, {f.params['calibration']} calibration)"
    )
    for col in ("model", "AUC", "PR-AUC", "Brier", "ECE"):
        t.add_column(col)
    for k, m in f.metrics.items():
        t.add_row(k, f"{m['auc']:.4f}", f"{m['pr_auc']:.4f}", f"{m['brier']:.4f}", f"{m['ece']:.4f}")
    Console().print(t)
    for flag in f.flags:
        console.print(f"[yellow]leakage guard excluded[/] {flag.column}: {flag.reason}")
    for col, why in f.dropped:
        console.print(f"[dim]preprocessing dropped {col}: {why}[/]")
    Console().print(f.tables["tiers"].to_string(index=False))


@models_app.command("list")
@friendly
def models_list(name: Annotated[str | None, typer.Argument()] = None):
    """Registered versions, their aliases and test metrics."""
    from model.registry import list_versions

    rows = list_versions(name)
    t = Table(title="registered models")
    for col in ("model", "version", "aliases", "motion", "auc", "ece", "lr_auc", "created"):
        t.add_column(col)
    for r in rows:
        t.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values()])
    Console().print(t)


@models_app.command("promote")
@friendly
def models_promote(
    name: str,
    version: Annotated[str | None, typer.Option(help="default: the challenger")] = None,
    force: Annotated[bool, typer.Option(help="skip the gate (recorded as forced)")] = False,
    why: Annotated[str, typer.Option(help="reason, kept in the audit log")] = "",
):
    """Promote the challenger if it is no worse on the recent holdout (AUC and ECE), unless forced."""
    from model.registry import promote

    d = promote(name, version, force, why)
    for r in d.reasons:
        console.print(f"  {r}")
    if not d.promoted:
        console.print(f"[red]refused[/]: {name} v{d.challenger} stays challenger; champion v{d.champion}")
        raise typer.Exit(1)
    Console().print(f"promoted {name} v{d.challenger} to champion (was v{d.champion})")


@models_app.command("rollback")
@friendly
def models_rollback(name: str, why: Annotated[str, typer.Option()] = ""):
    """Point champion back at the version it replaced."""
    from model.registry import rollback

    old, new = rollback(name, why)
    Console().print(f"{name}: champion v{old} → v{new}")


@models_app.command("audit")
@friendly
def models_audit(name: Annotated[str | None, typer.Argument()] = None):
    """Every alias move: when, who, why, metrics before/after."""
    from model.registry import audit_log

    t = Table(title="alias audit log")
    for col in ("at", "who", "model", "alias", "from", "to", "action", "why"):
        t.add_column(col)
    for r in audit_log(name):
        t.add_row(
            r["at"],
            r["who"],
            r["model"],
            r["alias"],
            str(r["from_version"]),
            str(r["to_version"]),
            r["action"],
            r["why"] or "",
        )
    Console().print(t)


@app.command()
@friendly
def score(
    model: Annotated[str, typer.Option(help="NAME, NAME@alias or NAME/version")],
    data: Annotated[Path, typer.Option(help="canonical folder (motion models) or flat file (spec models)")],
    out: Annotated[Path, typer.Option(help="output .csv or .parquet")],
    as_of: Annotated[
        str | None, typer.Option(help="motion models: score as of (default: latest event)")
    ] = None,
    spec: Annotated[
        Path | None, typer.Option(help="spec models: the spec (reader options, id column)")
    ] = None,
    reasons: int = 3,
):
    """Batch-score; keeps input order and ids; adds score, score_100, tier, route and reasons."""
    from serving.file_scoring import score_file

    with console.status(f"scoring {data} with {model}"):
        res = score_file(model, data, out, as_of, reasons, spec_path=str(spec) if spec else None)
    summary(f"scored {len(res)} rows → {out}", res["tier"].value_counts().sort_index().to_dict())


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port")] = 3000,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="worker processes (one per core at most)", min=1)] = 1,
):
    """Start the BentoML scoring service (loads each motion's champion from the MLflow registry)."""
    serve_service(port, host, workers)


def serve_service(port: int, host: str, workers: int) -> None:
    """Replace this process with ``bentoml serve``; the worker count goes through BentoML's own configuration."""
    env = os.environ.copy()
    overrides = json.loads(env.get("BENTOML_CONFIG_OVERRIDES") or "{}")
    overrides.setdefault("services", {}).setdefault("leadscore", {})["workers"] = workers
    env["BENTOML_CONFIG_OVERRIDES"] = json.dumps(overrides)
    cmd = serve_command(host, port)
    os.chdir(PROJECT_ROOT)
    sys.stdout.flush()
    os.execvpe(cmd[0], cmd, env)


@app.command()
@friendly
def demo(
    data: Annotated[Path, typer.Option(help="folder for the generated data")] = Path("data/demo"),
    port: Annotated[int, typer.Option(help="HTTP port of the service")] = 3000,
    leads: Annotated[int, typer.Option(help="leads (B2B) and customers (B2C) to generate", min=100)] = 20_000,
    retrain: Annotated[bool, typer.Option(help="train new versions even if champions exist")] = False,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="start the service at the end")
    ] = True,
):
    """The main job on the embedded default: generate → features → train b2b, b2c, hybrid → register → serve."""
    from cli.demo import prepare_demo

    prepare_demo(data, port, leads, retrain)
    if serve_after:
        serve_service(port, "127.0.0.1", 1)


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
    from feedback.report import build, log_to_mlflow, write
    from leadscore.store import Store

    rep = build(motion.value, Store.default(), since)
    page = write(rep, out)
    run = log_to_mlflow(rep, out)
    s = rep.summary
    summary(
        f"{motion.value} monitoring → {page} (MLflow run {run[:8]})",
        {
            k: s[k]
            for k in (
                "rows",
                "positives",
                "auc",
                "ece",
                "top_decile_lift",
                "score_psi",
                "max_feature_psi",
                "drifted_features",
                "calibration_decayed",
            )
        },
    )


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
