"""The service's own Prometheus metrics (BentoML's ``bentoml.metrics``, on its /metrics): scores, tiers and
scoring time per motion, degraded scores, unseen categories, and the journal's backlog."""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import bentoml
import numpy as np

SCORE = bentoml.metrics.Histogram(
    name="leadscore_score",
    documentation="calibrated scores served",
    labelnames=["motion"],
    buckets=[i / 10 for i in range(1, 11)],
)
TIERS = bentoml.metrics.Counter(
    name="leadscore_tier_total", documentation="scores by tier", labelnames=["motion", "tier"]
)
LATENCY = bentoml.metrics.Histogram(
    name="leadscore_scoring_seconds",
    documentation="feature + model + routing time per lead",
    labelnames=["motion"],
    buckets=[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
)
JOURNAL = bentoml.metrics.Gauge(
    name="leadscore_journal_unshipped_bytes",
    documentation="score-log rows journaled on this worker's disk and not yet in the store",
)
DEGRADED = bentoml.metrics.Counter(
    name="leadscore_degraded_total",
    documentation="scores made without a dependency that was down (e.g. the online store)",
    labelnames=["motion", "dependency"],
)
UNKNOWN = bentoml.metrics.Counter(
    name="leadscore_unknown_category_total",
    documentation="categorical values the model has never seen (scored as unknown)",
    labelnames=["motion", "feature"],
)


@functools.cache
def _per_motion(motion: str) -> tuple[Any, Any]:
    """The motion's score and latency histograms (label lookups cost more than the observations)."""
    return SCORE.labels(motion=motion), LATENCY.labels(motion=motion)


def observe(results: list[dict[str, Any]], unshipped: int) -> None:
    """Count a batch of scorer results (``Scorer.score_many``); ``unshipped``: the journal's backlog in bytes."""
    tiers: Counter[tuple[str, str]] = Counter()
    for r in results:
        score, latency = _per_motion(r["motion"])
        score.observe(r["score"])
        latency.observe(r["_latency"])
        tiers[r["motion"], r["tier"]] += 1
        for dependency in r["degraded"]:
            DEGRADED.labels(motion=r["motion"], dependency=dependency).inc()
        for feature, n in r["unknown_categories"].items():
            UNKNOWN.labels(motion=r["motion"], feature=feature).inc(n)
    for (motion, tier), n in tiers.items():
        TIERS.labels(motion=motion, tier=tier).inc(n)
    JOURNAL.set(unshipped)


def observe_columns(result: dict[str, Any], unshipped: int) -> None:
    """Count a columnar result (``Scorer.score_columns``) the same way."""
    motion = result["motion"]
    score, latency = _per_motion(motion)
    for s in result["score"].tolist():
        score.observe(s)
    latency.observe(result["_latency"])
    tiers, counts = np.unique(result["tier"], return_counts=True)
    for tier, k in zip(tiers.tolist(), counts.tolist(), strict=True):
        TIERS.labels(motion=motion, tier=tier).inc(k)
    for dependency in result["degraded"]:
        DEGRADED.labels(motion=motion, dependency=dependency).inc(result["rows"])
    for unseen in result["unknown_categories"]:
        for feature, k in unseen.items():
            UNKNOWN.labels(motion=motion, feature=feature).inc(k)
    JOURNAL.set(unshipped)
