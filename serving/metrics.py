"""The service's own Prometheus metrics (BentoML's ``bentoml.metrics``, on its /metrics): scores, tiers and
scoring time per motion, degraded scores, unseen categories, and the journal's backlog."""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import bentoml
import numpy as np

# Scores served, counted by tenth of the score range ("0.0" … "0.9": [0, 0.1) … [0.9, 1]): a counter, not a
# histogram, so a batch of 1,000 scores is ten increments, not a thousand observations (each a locked write to a
# shared memory map in multiprocess mode: 4.5 µs a lead on /score_columns).
SCORES = bentoml.metrics.Counter(
    name="leadscore_scores_total",
    documentation="calibrated scores served, by tenth of the score range (band 0.3: scores in [0.3, 0.4))",
    labelnames=["motion", "band"],
)
BANDS = [f"{i / 10:.1f}" for i in range(10)]
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
def _latency(motion: str) -> Any:
    """The motion's latency histogram (label lookups cost more than the observations)."""
    return LATENCY.labels(motion=motion)


@functools.cache
def _band(motion: str, band: int) -> Any:
    return SCORES.labels(motion=motion, band=BANDS[band])


def band_of(score: float) -> int:
    """The tenth of [0, 1] a score falls in (0 … 9; a score of exactly 1 in the last)."""
    return min(max(int(score * 10), 0), 9)


def score_bands(scores: np.ndarray | list[float]) -> np.ndarray:
    """How many scores fall in each tenth of [0, 1] (``band_of``, for a whole batch)."""
    band = np.clip((np.asarray(scores, dtype=np.float64) * 10).astype(np.int64), 0, 9)
    return np.bincount(band, minlength=10)


def _count_scores(motion: str, scores: np.ndarray) -> None:
    counts = score_bands(scores)
    for band in np.flatnonzero(counts).tolist():
        _band(motion, band).inc(int(counts[band]))


def observe(results: list[dict[str, Any]], unshipped: int) -> None:
    """Count a batch of scorer results (``Scorer.score_many``); ``unshipped``: the journal's backlog in bytes."""
    tiers: Counter[tuple[str, str]] = Counter()
    bands: Counter[tuple[str, int]] = Counter()
    for r in results:
        _latency(r["motion"]).observe(r["_latency"])
        bands[r["motion"], band_of(r["score"])] += 1
        tiers[r["motion"], r["tier"]] += 1
        for dependency in r["degraded"]:
            DEGRADED.labels(motion=r["motion"], dependency=dependency).inc()
        for feature, n in r["unknown_categories"].items():
            UNKNOWN.labels(motion=r["motion"], feature=feature).inc(n)
    for (motion, tier), n in tiers.items():
        TIERS.labels(motion=motion, tier=tier).inc(n)
    for (motion, band), n in bands.items():
        _band(motion, band).inc(n)
    JOURNAL.set(unshipped)


def observe_columns(result: dict[str, Any], unshipped: int) -> None:
    """Count a columnar result (``Scorer.score_columns``) the same way."""
    motion = result["motion"]
    _count_scores(motion, result["score"])
    _latency(motion).observe(result["_latency"])
    tiers, counts = np.unique(result["tier"], return_counts=True)
    for tier, k in zip(tiers.tolist(), counts.tolist(), strict=True):
        TIERS.labels(motion=motion, tier=tier).inc(k)
    for dependency in result["degraded"]:
        DEGRADED.labels(motion=motion, dependency=dependency).inc(result["rows"])
    for unseen in result["unknown_categories"]:
        for feature, k in unseen.items():
            UNKNOWN.labels(motion=motion, feature=feature).inc(k)
    JOURNAL.set(unshipped)
