"""``leadscore keys``: API keys — create (shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.common import console, friendly

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


@keys_app.command("create")
@friendly
def keys_create(
    name: Annotated[str, typer.Option(help="a name for the key (who or what uses it)")],
    scope: Annotated[list[str], typer.Option(help="score, outcomes, events or admin; repeatable")],
    rate: Annotated[int | None, typer.Option(help="requests a minute this key may make")] = None,
):
    """Create a key; it is printed once, as the last line (the store keeps only its hash)."""
    from leadscore import keys
    from leadscore.store import Store

    key = keys.create(Store.default(), name, scope, rate)
    console.print(
        f"created key {name!r} with scope {', '.join(sorted(set(scope)))}; keep it now, it is not shown "
        "again. Send it as: Authorization: Bearer KEY"
    )
    print(key)


@keys_app.command("list")
@friendly
def keys_list():
    """Every key: name, scopes, rate limit, created, revoked."""
    from leadscore import keys
    from leadscore.store import Store

    t = Table(title="API keys")
    for col in ("name", "scopes", "rate/min", "created", "revoked"):
        t.add_column(col)
    for k in keys.load(Store.default()):
        t.add_row(
            k.name, ",".join(sorted(k.scopes)), str(k.rate_per_minute or ""), k.created_at, k.revoked_at or ""
        )
    Console().print(t)


@keys_app.command("revoke")
@friendly
def keys_revoke(name: Annotated[str, typer.Argument(help="the key's name")]):
    """Revoke a key (services stop accepting it within seconds)."""
    from leadscore import keys
    from leadscore.store import Store

    keys.revoke(Store.default(), name)
    Console().print(f"revoked key {name!r}")
