"""Serving: the BentoML service and everything it runs per request (scorer, rules, score log, file scoring)."""

from __future__ import annotations

import sys

SERVICE = "serving.service:LeadScore"  # what ``bentoml serve`` imports


def serve_command(host: str, port: int) -> list[str]:
    """The ``bentoml serve`` command line of the service, run with this interpreter."""
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]
