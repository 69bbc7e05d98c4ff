"""The ``leadscore`` console command: one thin Typer command per stage of the flow.

Logic lives in the packages; commands only parse arguments, show progress and print a summary.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from cli.common import DEBUG, MODE, Motion, MotionChoice, console, friendly, progress_bar, summary
from cli.events import events_app, rescore
from cli.feedback import feedback_app
from cli.keys import keys_app
from cli.models import models_app
from leadscore import motions
from leadscore.errors import UserError
from leadscore.progress import stage
from leadscore.settings import project_dir
from serving import serve_command

app = typer.Typer(
    help="Calibrated lead scoring for B2B, B2C and hybrid motions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"leadscore {version('leadscore')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of any error")] = False,
    json_summary: Annotated[
        bool, typer.Option("--json", help="print each command's summary as one JSON object (for job runners)")
    ] = False,
) -> None:
    """Calibrated lead scoring for B2B, B2C and hybrid motions."""
    DEBUG["on"] = debug
    MODE["json"] = json_summary


app.add_typer(models_app, name="models")
app.add_typer(feedback_app, name="feedback")
app.add_typer(keys_app, name="keys")
app.add_typer(events_app, name="events")
app.command("rescore")(rescore)


@app.command()
@friendly
def generate(
    motion: Motion,
    leads: Annotated[int, typer.Option(help="leads (B2B) or customers (B2C)")] = 10_000,
    seed: Annotated[int, typer.Option(help="random seed: the same seed writes the same tables")] = 0,
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
    with stage("reading the canonical tables"):
        p = prepare(name, load_dataset(data, name))
    t = epoch_seconds(as_of) if as_of else latest_time(p)
    with stage("point-in-time features"):
        frame = features_as_of(p, t, conf)
    out.parent.mkdir(parents=True, exist_ok=True)
    with stage(f"writing {out}"):
        frame.to_parquet(out, index=False)
    rows = {
        "entities": len(frame),
        "features": frame.shape[1] - 2,
        "as_of": str(frame["as_of"].iloc[0]) if len(frame) else t,
    }
    rows |= {f"dropped: {k}": v for k, v in p.drops.counts.items()} | p.notes
    if materialize:
        s = Settings.load()
        s.ensure_home()
        store = open_store(s.online_store_url)
        with stage("materializing the online store"):
            rows["online store entities"] = write_online(p, t, conf, store)
        with stage("events taken in live, applied again"):
            from features.online_events import replay
            from leadscore.store import Store

            again = replay(name, Store(s.store_url), store, int(time.time()))
        rows |= {
            "live events re-applied": len(again.applied),
            "live events still pending": len(again.pending),
        }
        store.close()
    summary(f"{name} features → {out}", rows)


@app.command()
@friendly
def train(
    motion: Annotated[MotionChoice | None, typer.Argument(help="the motion (canonical data)")] = None,
    data: Annotated[Path | None, typer.Option(help="canonical folder, or a flat file with --spec")] = None,
    spec: Annotated[Path | None, typer.Option(help="a data-set spec (bring your own data)")] = None,
    search_seconds: Annotated[
        float | None,
        typer.Option(
            help="model search budget in seconds (0 = the motion's settings as they are); "
            "default: on for --spec, growing with the rows (model.search in the conf), off for a motion"
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="a Dask scheduler address: the training set computed partitioned by entity "
            "(default: LEADSCORE_DASK_SCHEDULER)"
        ),
    ] = None,
):
    """Train, evaluate beside two baselines, log to MLflow and register (first version → champion)."""
    from training.pipelines import train_motion, train_spec

    if spec is None and motion is None:
        raise UserError(f"give a motion ({', '.join(motions.NAMES)}) with --data, or --spec SPEC.yaml")
    if spec is not None:
        r = train_spec(spec, data, search_seconds)
    else:
        assert motion is not None
        if data is None:
            raise UserError("--data DIR is required with a motion")
        r = train_motion(motion.value, data, search_seconds, scheduler)
    f = r.fitted
    for flag in f.flags:
        console.print(f"[yellow]leakage guard excluded[/] {flag.column}: {flag.reason}", highlight=False)
    for col, why in f.dropped:
        console.print(f"[dim]preprocessing dropped {col}: {why}[/]", highlight=False)
    import pandas as pd

    quality = pd.DataFrame(
        [{"model": k} | {m: v[m] for m in ("auc", "pr_auc", "brier", "ece")} for k, v in f.metrics.items()]
    )
    facts = {
        "model": r.name,
        "version": r.version,
        "alias": r.alias,
        "run": r.run_id,
        "split": f.params["split"],
        "calibration": f.params["calibration"],
        "search": f"{f.params['search_candidates']} candidates, "
        f"{f.params['search_folds']} folds, cv AUC {f.params['cv_auc']:.4f}, blend {f.params['blend_linear_weight']}",
    }
    facts |= {k: v for k, v in f.params.items() if "account" in k}  # fmt: skip
    summary(f"{r.name} v{r.version} → {r.alias}", facts, {"quality": quality, "tiers": f.tables["tiers"]})


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
        Path | None,
        typer.Option(help="spec models: read the file with this spec instead of the reader the model keeps"),
    ] = None,
    reasons: Annotated[int, typer.Option(help="worded reasons per row (0: none, faster)", min=0)] = 3,
    allow_missing: Annotated[
        bool, typer.Option(help="score a file that lacks model inputs anyway (they count as unknown)")
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="a Dask scheduler address: score canonical data partitioned by entity, --out a folder "
            "(default: LEADSCORE_DASK_SCHEDULER)"
        ),
    ] = None,
):
    """Batch-score; keeps input order and ids; adds score, score_100, tier, route and reasons."""
    from serving.file_scoring import score_file

    res = score_file(model, data, out, as_of, reasons, spec_path=str(spec) if spec else None,
                     allow_missing=allow_missing, scheduler=scheduler)  # fmt: skip
    facts = {
        "rows": res.attrs["rows"],
        "out": str(out),
        "missing inputs": ", ".join(res.attrs["missing_inputs"]) or "none",
    } | ({"partitions": res.attrs["partitions"]} if "partitions" in res.attrs else {})
    summary(
        f"scored {res.attrs['rows']:,} rows with {model} → {out}",
        facts | {"tiers": res.attrs["tiers"], "routes": res.attrs["routes"]},
    )


@app.command()
@friendly
def serve(
    port: Annotated[int, typer.Option(help="HTTP port")] = 3000,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="worker processes (one per core at most)", min=1)] = 1,
    insecure: Annotated[bool, typer.Option(help="serve a non-loopback address with no API key")] = False,
):
    """Start the BentoML scoring service (loads each motion's champion from the MLflow registry)."""
    from leadscore import keys
    from leadscore.store import Store

    if not _loopback(host) and not insecure and not keys.load(Store.default()):
        raise UserError(
            f"no API key exists, so every endpoint would be open to {host}: create one "
            "(leadscore keys create --name NAME --scope score) or pass --insecure"
        )
    serve_service(port, host, workers)


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_service(port: int, host: str, workers: int) -> None:
    """Replace this process with ``bentoml serve``; the worker count goes through BentoML's own configuration."""
    env = os.environ.copy()
    overrides = json.loads(env.get("BENTOML_CONFIG_OVERRIDES") or "{}")
    overrides.setdefault("services", {}).setdefault("leadscore", {})["workers"] = workers
    env["BENTOML_CONFIG_OVERRIDES"] = json.dumps(overrides)
    cmd = serve_command(host, port)
    os.chdir(project_dir())
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
