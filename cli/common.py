"""What every command shares: the consoles, the error handling, progress bars, summaries, the motion choice."""

from __future__ import annotations

import enum
import functools
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadscore import motions
from leadscore.errors import UserError
from leadscore.schema import SchemaError

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
