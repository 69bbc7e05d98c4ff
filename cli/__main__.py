"""``python -m cli`` runs the ``leadscore`` command (where no entry-point script exists)."""

from cli.app import app

app(prog_name="leadscore")
