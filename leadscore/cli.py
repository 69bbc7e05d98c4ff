"""The ``leadscore`` console command: one thin Typer command per stage of the flow.

Logic lives in the packages; commands only parse arguments, show progress and print a summary.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Calibrated lead scoring for B2B, B2C and hybrid motions.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
models_app = typer.Typer(help="Registry: list, promote (gated), roll back.", no_args_is_help=True)
feedback_app = typer.Typer(help="Closed loop: ingest outcomes, report, retrain on evidence.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(feedback_app, name="feedback")
console = Console(stderr=True)
F = TypeVar("F", bound=Callable)


def friendly(fn: F) -> F:
    """Known failures (bad data, bad spec, missing file, refused gate) end with a clear message, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from leadscore.errors import UserError
        from leadscore.schema import SchemaError
        try:
            return fn(*args, **kwargs)
        except (UserError, SchemaError, FileNotFoundError, ValueError) as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, disable=not sys.stderr.isatty())


def summary(title: str, rows: dict[str, object]) -> None:
    t = Table(title=title, show_header=False)
    for k, v in rows.items():
        t.add_row(str(k), str(v))
    Console().print(t)


Motion = Annotated[str, typer.Argument(help="b2b, b2c or hybrid")]


@app.command()
@friendly
def generate(motion: Motion, leads: Annotated[int, typer.Option(help="leads (B2B) or customers (B2C)")] = 10_000,
             seed: int = 0, out: Annotated[Path, typer.Option(help="output folder")] = Path("data/synth"),
             scale: Annotated[float | None, typer.Option(help="events per lead (B2B) / session rate (B2C)")] = None):
    """Write a motion's canonical tables as Parquet, deterministic for a seed."""
    from leadscore.synth import generate as gen
    if leads <= 0:
        raise ValueError("--leads must be positive")
    with progress_bar() as bar:
        task = bar.add_task(f"generating {motion}", total=leads)
        written = gen(motion, leads, seed, out, scale=scale, progress=lambda k: bar.advance(task, k))
    summary(f"generated {motion} (seed {seed}) → {out}", written.tables)


def main() -> None:  # pragma: no cover - console entry
    app()


@app.command()
@friendly
def features(motion: Motion, data: Annotated[Path, typer.Option(help="folder of canonical tables")],
             out: Annotated[Path, typer.Option(help="output .parquet")],
             as_of: Annotated[str | None, typer.Option(help="point in time (default: latest event)")] = None,
             materialize: Annotated[bool, typer.Option(help="also write the online store as of this time")] = False):
    """Point-in-time features for every entity as of a timestamp (only rows with time ≤ as-of are used)."""
    from features.batch import features_as_of, latest_time, prepare, to_timestamp
    from features.online import materialize as write_online
    from features.online import open_store
    from leadscore.config import load_config
    from leadscore.schema import load_dataset
    from leadscore.settings import Settings
    conf = load_config(motion)
    p = prepare(motion, load_dataset(data, motion))
    t = to_timestamp(as_of) if as_of else latest_time(p)
    frame = features_as_of(p, t, conf)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    rows = {"entities": len(frame), "features": frame.shape[1] - 2, "as_of": str(frame["as_of"].iloc[0]) if len(frame) else t}
    rows |= {f"dropped: {k}": v for k, v in p.drops.counts.items()}
    if materialize:
        s = Settings.load()
        s.ensure_home()
        store = open_store(s.online_store_url)
        rows["online store entities"] = write_online(p, t, conf, store)
        store.close()
    summary(f"{motion} features → {out}", rows)
