"""``leadscore demo`` (``make demo``): the main job on the embedded default (SQLite MLflow store, ./mlruns, a local store file).

generate → features → train b2b, b2c, hybrid → register in MLflow → materialize the online store →
start the scoring service on 127.0.0.1 and print example calls. Re-running reuses data and champions.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from features.historical import latest_time
from features.materialize import materialize
from features.online_store import open_store
from features.prepare import prepare
from leadscore import motions
from leadscore.config import load_config
from leadscore.schema import load_dataset
from leadscore.settings import Settings, project_dir
from model import registry
from synthetic import generate
from training.pipelines import train_motion

console = Console(soft_wrap=True)


def prepare_demo(data: Path, port: int, leads: int, retrain: bool) -> None:
    """Everything the demo serves: data, champions and online stores (reused when they exist); prints example
    calls for the service on ``port``."""
    os.chdir(project_dir())
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    t0 = time.time()
    settings = Settings.load()
    settings.ensure_home()
    folders = {name: data / m.family for name, m in motions.MOTIONS.items()}
    summary = Table(title="leadscore demo")
    for col in ("motion", "version", "alias", "AUC", "logistic AUC", "ECE", "online entities"):
        summary.add_column(col)
    store = open_store(settings.online_store_url)
    for motion, folder in folders.items():
        if not (folder / "outcomes.parquet").exists():
            with console.status(f"generating {motion} data ({leads} leads) → {folder}"):
                generate(motion, leads, 42, folder)
        champion = registry.alias_version(motion, registry.CHAMPION)
        if champion is None or retrain:
            with console.status(
                f"training {motion}: point-in-time features, LightGBM, calibration, baselines"
            ):
                r = train_motion(motion, folder)
            m = r.fitted.metrics
            row = [
                motion,
                r.version,
                r.alias,
                f"{m['model']['auc']:.3f}",
                f"{m['logistic']['auc']:.3f}",
                f"{m['model']['ece']:.4f}",
            ]
        else:
            row = [motion, champion, "champion (kept)", "", "", ""]
        with console.status(f"materializing the {motion} online store"):
            p = prepare(motion, load_dataset(folder, motion))
            n = materialize(p, latest_time(p), load_config(motion), store)
        summary.add_row(*row, str(n))
        console.print(f"[green]✓[/] {motion} ready ({time.time() - t0:.0f}s)")
    store.close()
    console.print(summary)
    base = f"http://127.0.0.1:{port}"
    console.print("\n[bold]Try it[/] (once the service says it is listening):")
    for motion in motions.NAMES:
        console.print(
            f"  curl -s -X POST {base}/score -H 'content-type: application/json' "
            f"-d @serving/examples/{motion}.json"
        )
    console.print(
        f"  curl -s {base}/readyz ; curl -s {base}/metrics | grep leadscore_ ; open {base}/  (Swagger UI; the OpenAPI document is {base}/docs.json)"
    )
    console.print(f"  MLflow UI: .venv/bin/mlflow ui --backend-store-uri {settings.tracking_uri}\n")
