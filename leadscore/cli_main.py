"""``python -m leadscore.cli_main`` runs the console command (used where no entry-point script exists)."""

from leadscore.cli import app

if __name__ == "__main__":
    app()
