"""Where a /score_batch lead's CPU goes, stage by stage, in-process (the serving bench prints it)."""

from __future__ import annotations

import time
from pathlib import Path


def batch_stages(scorer, body: str, home: Path, workers: int = 2) -> dict:
    """Where a /score_batch lead's CPU time goes, in this process, on one 1,000-lead body: microseconds per lead
    for each stage of the service's own path (best of five, collector frozen as in a worker), LightGBM's own
    ``pred_contrib`` beside the SHAP table for comparison, and the leads/s that ``workers`` cores would reach if
    they did nothing but these stages (no HTTP, no event loop)."""
    import gc

    from pydantic import TypeAdapter

    from features.online_frame import rows_of
    from leadscore.store import Store
    from leadscore.times import epoch_seconds
    from serving.log_rows import result_batches
    from serving.responses import json_body
    from serving.schemas import ScoreRequest
    from serving.score_log import ScoreLog
    from serving.scorer import decide_batch

    def us(f) -> float:
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            f()
            best = min(best, time.perf_counter() - t0)
        return 1e6 * best / n

    gc.collect()
    gc.freeze()
    adapter = TypeAdapter(dict[str, list[ScoreRequest]])
    reqs = adapter.validate_json(body)["requests"]
    n, motion = len(reqs), reqs[0].motion
    loaded = scorer.models[motion]
    model, as_of = loaded.model, epoch_seconds(reqs[0].as_of)
    payloads = [scorer._validate(r) for r in reqs]
    columns = loaded.online.compute_columns(payloads, as_of)
    X = model.preprocessor.transform_columns(columns, n)
    features, scored = rows_of(columns), model.score_matrix(X, reasons=3)
    results = scorer.score_many(reqs)
    logged = result_batches(results, "bench")
    journal = ScoreLog(Store(f"sqlite:///{home}/journal-bench.db"), home, fsync_seconds=1.0)
    # Each stage timed on its own; the scorer's total also holds what no stage names (the answer dicts).
    out = {
        "parse + validate": us(lambda: adapter.validate_json(body)),
        "online features": us(lambda: loaded.online.compute_columns(payloads, as_of)),
        "feature rows (log, answers)": us(lambda: rows_of(columns)),
        "preprocess": us(lambda: model.preprocessor.transform_columns(columns, n)),
        "SHAP (table)": us(lambda: model.contributions(X)),
        "score, calibrate, tier, reasons (SHAP included)": us(lambda: model.score_matrix(X, reasons=3)),
        "routes, owners, SLAs, gates, grades": us(
            lambda: decide_batch(loaded.conf, reqs, columns, features, scored)
        ),
        "scorer total": us(lambda: scorer.score_many(reqs)),
        "JSON answers": us(lambda: [json_body(r) for r in results]),
        "score-log batches": us(lambda: result_batches(results, "bench")),
        "journal write (durable score log)": us(lambda: journal.append_batches(logged)),
    }
    total = (
        out["parse + validate"]
        + out["scorer total"]
        + out["JSON answers"]
        + out["score-log batches"]
        + out["journal write (durable score log)"]
    )
    gc.unfreeze()
    return {
        "us_per_lead": {k: round(v, 1) for k, v in out.items()},
        "us_per_lead_total": round(total, 1),
        "trees": model.booster.num_trees(),
        "lightgbm pred_contrib us_per_lead": round(
            us(lambda: model.booster.predict(X, pred_contrib=True, num_threads=1)), 1
        ),
        f"ceiling leads_per_s on {workers} cores": round(workers * 1e6 / total),
    }
