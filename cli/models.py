"""``leadscore models``: the registry — list, promote (gated), roll back, audit."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.common import console, friendly

models_app = typer.Typer(help="Registry: list, promote (gated), roll back.", no_args_is_help=True)


@models_app.command("list")
@friendly
def models_list(
    name: Annotated[str | None, typer.Argument(help="one registered model (default: all)")] = None,
):
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
    name: Annotated[str, typer.Argument(help="the registered model (a motion, or a spec's name)")],
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
def models_rollback(
    name: Annotated[str, typer.Argument(help="the registered model")],
    why: Annotated[str, typer.Option(help="reason, kept in the audit log")] = "",
):
    """Point champion back at the version it replaced."""
    from model.registry import rollback

    old, new = rollback(name, why)
    Console().print(f"{name}: champion v{old} → v{new}")


@models_app.command("audit")
@friendly
def models_audit(
    name: Annotated[str | None, typer.Argument(help="one registered model (default: all)")] = None,
):
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
