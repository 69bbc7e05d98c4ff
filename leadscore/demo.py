"""``make demo``: the main job on the embedded default (SQLite MLflow store, ./mlruns, a local store file).

generate → features → train b2b, b2c, hybrid → register in MLflow → materialize the online store →
start the scoring service on 127.0.0.1 and print example calls. Re-running reuses data and champions.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from leadscore.settings import PROJECT_ROOT, Settings

console = Console(soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="data/demo")
    ap.add_argument("--port", type=int, default=3000)
    ap.add_argument("--leads", type=int, default=20_000)
    ap.add_argument("--retrain", action="store_true", help="train new versions even if champions exist")
    ap.add_argument("--no-serve", action="store_true")
    args = ap.parse_args(argv)
    os.chdir(PROJECT_ROOT)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from features.batch import latest_time, prepare
    from features.online import materialize, open_store
    from leadscore.config import load_config
    from leadscore.schema import load_dataset
    from leadscore.synth import generate
    from training import registry
    from training.train import train_motion

    t0 = time.time()
    settings = Settings.load()
    settings.ensure_home()
    data = Path(args.data)
    folders = {"b2b": data / "b2b", "b2c": data / "b2c", "hybrid": data / "b2b"}
    summary = Table(title="leadscore demo")
    for col in ("motion", "version", "alias", "AUC", "logistic AUC", "ECE", "online entities"):
        summary.add_column(col)
    store = open_store(settings.online_store_url)
    for motion, folder in folders.items():
        if not (folder / "outcomes.parquet").exists():
            with console.status(f"generating {motion} data ({args.leads} leads) → {folder}"):
                generate(motion, args.leads, 42, folder)
        champion = registry.alias_version(motion, registry.CHAMPION)
        if champion is None or args.retrain:
            with console.status(f"training {motion}: point-in-time features, LightGBM, calibration, baselines"):
                r = train_motion(motion, folder)
            m = r.fitted.metrics
            row = [motion, r.version, r.alias, f"{m['model']['auc']:.3f}", f"{m['logistic']['auc']:.3f}",
                   f"{m['model']['ece']:.4f}"]
        else:
            row = [motion, champion, "champion (kept)", "", "", ""]
        with console.status(f"materializing the {motion} online store"):
            p = prepare(motion, load_dataset(folder, motion))
            n = materialize(p, latest_time(p), load_config(motion), store)
        summary.add_row(*row, str(n))
        console.print(f"[green]✓[/] {motion} ready ({time.time() - t0:.0f}s)")
    store.close()
    console.print(summary)
    base = f"http://127.0.0.1:{args.port}"
    console.print("\n[bold]Try it[/] (once the service says it is listening):")
    for motion in ("b2b", "b2c", "hybrid"):
        console.print(f"  curl -s -X POST {base}/score -H 'content-type: application/json' "
                      f"-d @serving/examples/{motion}.json")
    console.print(f"  curl -s {base}/readyz ; curl -s {base}/metrics | grep leadscore_ ; open {base}/docs")
    console.print(f"  MLflow UI: .venv/bin/mlflow ui --backend-store-uri {settings.tracking_uri}\n")
    if not args.no_serve:
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "leadscore.cli_main", "serve", "--port", str(args.port)])


if __name__ == "__main__":
    main()
