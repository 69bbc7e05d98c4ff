"""``leadscore events consume`` (a Redis Stream into the online state, re-scores and triggers) and ``leadscore
rescore`` (decay: re-score what has not been scored for a while)."""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer

from cli.common import MotionChoice, friendly, summary

events_app = typer.Typer(
    help="Behaviour as it happens: consume a Redis Stream of events.", no_args_is_help=True
)


@events_app.command("consume")
@friendly
def consume(
    from_: Annotated[str, typer.Option("--from", help="the Redis URL, e.g. redis://127.0.0.1:6379/0")],
    stream: Annotated[str, typer.Option(help="the stream's key; entries hold 'motion' and 'event' (JSON)")],
    group: Annotated[str, typer.Option(help="the consumer group (created when missing)")] = "leadscore",
    consumer: Annotated[
        str | None, typer.Option(help="this consumer's name in the group (default: host and process id)")
    ] = None,
    batch: Annotated[int, typer.Option(help="entries read at a time")] = 500,
    claim_idle_ms: Annotated[
        int, typer.Option(help="take over another consumer's unacknowledged entries idle this long")
    ] = 30_000,
    until_empty: Annotated[
        bool, typer.Option(help="stop once nothing is new or pending (for jobs and tests)")
    ] = False,
    max_seconds: Annotated[float | None, typer.Option(help="stop after this long")] = None,
):
    """Read events from a Redis Stream through a consumer group: each entry is acknowledged only after its events
    are applied and the re-scores are journaled; a dead consumer's entries are claimed and processed."""
    from leadscore.settings import Settings
    from serving.stream import StreamConsumer, pipeline

    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    with pipeline(Settings.load()) as ingest:
        c = StreamConsumer(ingest, from_, stream, group, name, batch, claim_idle_ms)
        t = c.run(until_empty=until_empty, max_seconds=max_seconds)
    summary(f"consumed {stream} as {group}/{name}", {
        "entries": t.entries, "events": t.events, "new": t.new, "duplicates": t.duplicates,
        "claimed from other consumers": t.claimed, "dead-lettered": t.dead, "re-scored": t.rescored,
        "notifications": t.notifications})  # fmt: skip


@friendly
def rescore(
    motion: Annotated[MotionChoice, typer.Argument(help="the motion")],
    older_than: Annotated[
        str, typer.Option(help="re-score entities last scored longer ago than this (7d, 12h)")
    ],
):
    """Re-score every lead or customer whose last score is older than the bound (for cron or Airflow): scores
    decay without new activity, and score-drop triggers fire."""
    from leadscore.settings import Settings
    from serving.stream import parse_duration, pipeline, rescore_older

    seconds = parse_duration(older_than)
    with pipeline(Settings.load()) as ingest:
        r = rescore_older(ingest, motion.value, seconds)
    summary(f"{motion.value}: re-scored what was older than {older_than}", r)
