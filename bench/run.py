"""``make bench``: every figure is a ratio against a peer measured in the same run.

Feature throughput (vs a pandas groupby-apply), online feature CPU, quality on the shared real data sets (vs
logistic regression, naive Bayes and a default LightGBM), serving (vs ``mlflow models serve`` and a
hand-written FastAPI + LightGBM app). Each part runs in its own process; results go to bench/out/results.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

OUT = Path(__file__).resolve().parent / "out"
console = Console(soft_wrap=True, width=170)  # tables stay readable when piped to a log


def part(module: str, *args: str, env: dict[str, str] | None = None) -> object:
    console.print(f"[bold]running[/] {module} {' '.join(args)} {env or ''}")
    out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                         env=os.environ | (env or {}))  # fmt: skip
    if out.returncode != 0:
        console.print(out.stderr[-3000:])
        raise SystemExit(f"{module} failed")
    return json.loads(
        out.stdout[out.stdout.index("{") if out.stdout.lstrip()[0] == "{" else out.stdout.index("[") :]
    )


SERVERS = (
    "leadscore /score",
    "leadscore /score with an API key",
    "leadscore /score, journal off, no key",
    "mlflow models serve",
    "fastapi + lightgbm",
)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    only = set(sys.argv[1:]) or {
        "features",
        "schema",
        "quality",
        "serving",
        "batch",
        "batch-large",
        "events",
        "scale",
        "soak",
    }
    results: dict = {}
    if "features" in only:
        results["features"] = [part("bench.features", m) for m in ("b2c", "b2b")]
        results["online"] = part("bench.features", "online")
        t = Table(title="features (point-in-time batch) vs pandas groupby-apply, same run")
        for c in ("motion", "entities", "events", "events/s", "× pandas apply", "peak RSS GB"):
            t.add_column(c)
        for r in results["features"]:
            t.add_row(
                r["motion"],
                f"{r['entities']:,}",
                f"{r['events']:,}",
                f"{r['events_per_s']:,}",
                f"{r['speedup_vs_pandas_apply']}",
                f"{r['peak_rss_gb']}",
            )
        console.print(t)
        for r in results["features"]:
            if "duckdb_s" in r:
                console.print(
                    f"{r['motion']} features vs DuckDB SQL (all {r['duckdb_features_checked_equal']} features, values "
                    f"checked equal on all {r['duckdb_leads_checked']:,} leads), from the same loaded tables with the "
                    f"same cleaning: ours {r['features_s']} s (prepare {r['prepare_s']} s, then the snapshot), DuckDB "
                    f"{r['duckdb_s']} s: {r['ratio_vs_duckdb']}× DuckDB ({r['ratio_vs_duckdb_without_cleaning']}× "
                    f"DuckDB without the cleaning; {r['ratio_vs_duckdb_from_parquet_with_our_load']}× DuckDB reading "
                    f"the Parquet files itself, our load counted). Each further snapshot {r['snapshot_s']} s: "
                    f"{r['ratio_vs_duckdb_per_snapshot']}× DuckDB; a training set of {r['training_set_snapshots']} "
                    f"snapshots: {r['ratio_vs_duckdb_training_set']}× DuckDB"
                )
        console.print(f"online features, CPU per lead (µs): {results['online']['online_cpu_us_per_lead']}")
    if "schema" in only:
        r = results["schema"] = part("bench.schema")
        console.print(
            f"schema validation of {r['events']:,} raw events: rule table {r['rule_table_s']} s "
            f"({r['rule_table_rows_per_s']:,} rows/s), pandera {r['pandera_s']} s ({r['pandera_rows_per_s']:,} rows/s): "
            f"{r['speedup_vs_pandera']}× pandera"
        )
    if "quality" in only:
        results["quality"] = part("bench.quality")
        t = Table(
            title="quality on the shared data: mean ± sd over 5 split seeds (same split for every model)"
        )
        for c in ("data", "split", "model AUC", "LR", "NB", "LGBM dflt", "gap to best peer [95% CI]", "model ECE",
                  "ECE floor", "ECE pooled (floor)", "LGBM dflt ECE / pooled", "blend", "train s (max)"):  # fmt: skip
            t.add_column(c, no_wrap=True)
        for r in results["quality"]:
            t.add_row(
                r["data"], r["split"], f"{r['model_auc_mean']:.4f} ± {r['model_auc_sd']:.4f}",
                f"{r['logistic_auc_mean']:.4f}", f"{r['naive_bayes_auc_mean']:.4f}",
                f"{r['lightgbm_default_auc_mean']:.4f}",
                f"{r['gap_best_peer']:+.4f} [{r['gap_best_peer_ci95'][0]:+.4f}, {r['gap_best_peer_ci95'][1]:+.4f}] "
                f"vs {r['best_peer']}",
                f"{r['model_ece_mean']:.4f} ± {r['model_ece_sd']:.4f}", f"{r['model_ece_floor_mean']:.4f}",
                f"{r['model_ece_pooled']:.4f} ({r['model_ece_pooled_floor']:.4f})",
                f"{r['lightgbm_default_ece_mean']:.4f} / {r['lightgbm_default_ece_pooled']:.4f}",
                f"{r['blend_used']}/{r['splits']}", f"{r['train_seconds_max']}",
            )  # fmt: skip
        console.print(t)
        console.print(
            "gap: the model's AUC minus the best peer's, paired per split, with Nadeau and Bengio's corrected "
            "interval; ECE floor: what a perfectly calibrated model shows on a test fold of that size; ECE pooled: "
            "every split's test predictions together (a floor about √5 lower)"
        )
        ref = results["quality_reference"] = part("bench.quality", "--reference")
        console.print(
            "the data README's reference protocol (default LightGBM, 5 stratified folds, seed 0): "
            + "; ".join(
                f"{r['data']} AUC {r['auc']:.3f}, ECE out of fold {r['ece_out_of_fold']:.3f} "
                f"(folds' own {r['ece_per_fold_mean']:.3f})"
                for r in ref
            )
        )
    if "serving" in only:
        results["serving"] = part("bench.serving")
        s = results["serving"]
        t = Table(
            title=f"serving at {s['connections']} connections (wrk, 127.0.0.1), same champion, same run"
        )
        knee = s["knee connections"]
        for c in ("endpoint", "req/s", "p50 ms", "p99 ms", "errors", f"req/s at {knee}", f"p99 ms at {knee}"):
            t.add_column(c)
        for k in SERVERS:
            r = s[k]
            t.add_row(
                k,
                f"{r['rps']:.0f}",
                f"{r['p50_ms']:.1f}",
                f"{r['p99_ms']:.1f}",
                str(r["errors"] + r["non2xx"]),
                f"{r['rps_at_knee']:.0f}" if "rps_at_knee" in r else "",
                f"{r['p99_ms_at_knee']:.1f}" if "p99_ms_at_knee" in r else "",
            )
        console.print(t)
        console.print(
            "medians of interleaved rounds; req/s per round: "
            + "; ".join(f"{k} {s[k]['rounds_rps']}" for k in SERVERS)
        )
        console.print(
            f"ratio vs mlflow models serve: {s['ratio vs mlflow models serve']:.2f}×; "
            f"vs FastAPI + LightGBM: {s['ratio vs fastapi + lightgbm']:.2f}×; with an API key vs open: "
            f"{s['ratio with an API key vs open']:.3f}×; keys and journal on vs both off: "
            f"{s['ratio keys and journal on vs both off']:.3f}× ({s['ratio keys and journal on vs both off, at the knee']:.3f}× "
            f"at {knee}); realtime batches average "
            f"{s['leadscore realtime batches (mean size)']:.1f} requests"
        )
        console.print(
            f"/score_batch: {s['leadscore /score_batch leads_per_s']:.0f} leads/s "
            f"(rounds {s['leadscore /score_batch rounds']}), FastAPI + LightGBM /predict_batch "
            f"{s['fastapi + lightgbm /predict_batch leads_per_s']:.0f} rows/s "
            f"(rounds {s['fastapi + lightgbm /predict_batch rounds']}): "
            f"{s['batch ratio vs fastapi + lightgbm /predict_batch']:.2f}× (4 clients, 1,000 distinct leads "
            "per call, features precomputed for the peer)"
        )
        console.print(
            f"/score_columns (the same leads as columns): {s['leadscore /score_columns leads_per_s']:.0f} leads/s "
            f"(rounds {s['leadscore /score_columns rounds']}): "
            f"{s['columns ratio vs fastapi + lightgbm /predict_batch']:.2f}× the peer's /predict_batch"
        )
        st = s["leadscore /score_batch stages"]
        console.print(
            "/score_batch CPU per lead in-process (µs, best of 5 on one 1,000-lead body): "
            + "; ".join(f"{k} {v}" for k, v in st["us_per_lead"].items())
            + f"; total {st['us_per_lead_total']} → at most {st['ceiling leads_per_s on 2 cores']:,} leads/s "
            f"on 2 cores before any HTTP work; LightGBM's own pred_contrib would take "
            f"{st['lightgbm pred_contrib us_per_lead']} µs per lead ({st['trees']} trees)"
        )
    if "batch" in only:
        r = results["batch"] = part("bench.batch")
        console.print(
            f"batch scoring, {r['leads']:,} B2B leads: leadscore score {r['leadscore score leads/s']:,} leads/s, the floor "
            f"(same features + bare booster predict) {r['floor leads/s']:,} leads/s: {r['ratio vs floor']}× the floor; "
            f"peak RSS {r['leadscore score peak RSS GB']} GB (floor {r['floor peak RSS GB']} GB)"
        )
    if (
        "batch-large" in only
    ):  # the memory figure: 1M leads and 50M events, past LEADSCORE_MAX_EVENTS_IN_MEMORY
        r = results["batch-large"] = part("bench.batch", env={"BENCH_BATCH_LEADS": "1000000",
                                          "BENCH_BATCH_EVENTS_PER_LEAD": "60", "BENCH_BATCH_REPEATS": "1"})  # fmt: skip
        console.print(
            f"batch scoring, {r['leads']:,} B2B leads and {r['events']:,} events: leadscore score "
            f"{r['leadscore score leads/s']:,} leads/s, peak RSS {r['leadscore score peak RSS GB']} GB; the floor "
            f"(everything in memory) {r['floor leads/s']:,} leads/s, peak RSS {r['floor peak RSS GB']} GB: "
            f"{r['ratio vs floor']}× the floor"
        )
    if "scale" in only:
        r = results["scale"] = part("bench.scale")
        t = Table(title="Dask LocalCluster on this machine: B2B features partitioned by account")
        for c in (
            "workers",
            "leads",
            "events",
            "partition s",
            "features s",
            "total s",
            "events/s",
            "peak GB/worker",
        ):
            t.add_column(c)
        for x in r["runs"]:
            t.add_row(str(x["workers"]), f"{x['leads']:,}", f"{x['events']:,}", str(x["partition_s"]),
                      str(x["features_s"]), str(x["total_s"]), f"{x['events_per_s']:,}", str(x["peak_rss_gb_per_worker"]))  # fmt: skip
        console.print(t)
        console.print({k: v for k, v in r.items() if k != "runs"})
    if "events" in only:
        r = results["events"] = part("bench.events")
        t = Table(title="real-time events (2 workers, 127.0.0.1, same run)")
        for c in ("measure", "value"):
            t.add_column(c)
        for k, v in r.items():
            if k != "example notification":
                t.add_row(k, json.dumps(v))
        console.print(t)
        console.print("example notification: " + json.dumps(r["example notification"]))
    if "soak" in only:
        r = results["soak"] = part("bench.soak")
        console.print(
            f"soak, {r['seconds']} s at {r['connections']} connections: {r['requests']:,} requests ({r['req_per_s']:,}/s, p99 "
            f"{r['p99_ms']} ms, {r['errors']} errors); acknowledged {r['acknowledged']:,}, in the score log "
            f"{r['score_log_rows']:,} ({r['rows_minus_acknowledged']:+,}: answers wrk had not read when it stopped); "
            f"workers' RSS {r['rss_mb_after_1_min']} MB after a minute, {r['rss_mb_at_end']} MB at the end "
            f"({r['rss_drift_mb']:+} MB)"
        )
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=float))
    console.print(f"results → {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
