"""What every command shares: the consoles, the error handling, progress bars, summaries, the motion choice."""

from __future__ import annotations

import enum
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadscore import motions
from leadscore.errors import UserError
from leadscore.schema import SchemaError

# On a terminal, rich fits the width; in a log file or a pipe, a line is never cut into fragments.
console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 10_000)
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 10_000)
F = TypeVar("F", bound=Callable)
MODE = {"json": False}  # ``leadscore --json``: each command's summary as one JSON object on stdout


DEBUG = {"on": False}  # ``leadscore --debug``: every error with its traceback


def friendly(fn: F) -> F:
    """A user's mistake (bad data, bad spec, missing file, refused gate) ends with one line and exit 2; anything
    else is a bug and shows its traceback (exit 1); ``--debug`` shows the traceback of either."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with show_stages():
                return fn(*args, **kwargs)
        except (UserError, SchemaError, FileNotFoundError) as exc:
            if DEBUG["on"]:
                raise
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


def summary(title: str, rows: Mapping[Any, object], tables: Mapping[str, Any] | None = None) -> None:
    """A command's result: a table (and further tables) on a terminal or in a log, or with ``--json`` one JSON
    object (``{"title": ..., **rows, **tables}``) for a job runner to read."""
    if MODE["json"]:
        body = {"title": title} | {str(k): v for k, v in rows.items()}
        for name, t in (tables or {}).items():
            body[name] = json.loads(t.to_json(orient="records")) if hasattr(t, "to_json") else t
        sys.stdout.write(json.dumps(body, default=str) + "\n")
        return
    t = Table(title=title, show_header=False)
    for k, v in rows.items():
        t.add_row(str(k), str(v))
    out.print(t)
    for name, frame in (tables or {}).items():
        table = Table(title=name)
        for c in frame.columns:
            table.add_column(str(c), justify="right")
        for row in frame.itertuples(index=False):
            table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
        out.print(table)


class _StageLines(logging.Handler):
    """Shows ``leadscore.progress`` records: the running stage as a rich status on a terminal, and each finished
    stage as one line (``✓ features (3.1 s)``) — the same line in a log file."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.status: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        state, name = getattr(record, "state", None), getattr(record, "stage", record.getMessage())
        if state == "start" and console.is_terminal:
            if self.status is None:
                self.status = console.status(name)
                self.status.start()
            else:
                self.status.update(name)
        elif state == "done":  # on stderr: with --json, stdout holds the JSON alone
            console.print(f"[green]✓[/] {name} [dim]({record.seconds:.1f} s)[/]", highlight=False)  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
        super().close()


@contextmanager
def show_stages() -> Iterator[None]:
    handler = _StageLines()
    logger = logging.getLogger("leadscore.progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


MotionChoice = enum.Enum("MotionChoice", {n: n for n in motions.NAMES}, type=str)  # type: ignore[misc]
Motion = Annotated[MotionChoice, typer.Argument(help="the motion", show_default=False)]
