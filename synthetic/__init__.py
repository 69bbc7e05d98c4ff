"""Synthetic event-level data with a documented story and a known ground truth.

B2B story: accounts have an ICP fit (industry, size, revenue, region). Some accounts are in market for a
while. A lead's chance to win grows with fit, with the account being in market, with a business email and a
senior buying role, and with a multi-threaded buying group (an economic buyer *and* a champion engaged).
Winners show an intent surge (pricing, solution and demo pages, meetings, third-party intent) in the weeks
before they close; cycles are long (1–9 months) and longer for big accounts; deal value grows with size.

B2C story: customers have an engagement rate and a purchase propensity. Sessions follow a weekly rhythm
(weekends busier); sessions hold page and product views, searches, cart adds and removes, checkouts and
purchases.  Abandoned carts are recovered within days more often when the cart is valuable and the customer
keen, so recency, cart value and engagement drive next-week purchase.

Both carry noise, missing values and late-arriving events (files are not in time order).  Generation runs in
chunks with one random stream per chunk, so the same seed gives byte-identical files at any scale, and memory
stays bounded.  ``truth.parquet`` holds the latent propensity for tests (never a model input).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from leadscore import motions
from synthetic.b2b import generate_b2b
from synthetic.b2c import generate_b2c
from synthetic.common import Written

__all__ = ["Written", "generate", "generate_b2b", "generate_b2c", "read_truth"]


def generate(
    motion: str,
    n: int,
    seed: int,
    out: str | Path,
    scale: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> Written:
    """Generate a motion's canonical tables (hybrid uses the B2B tables)."""
    if motions.get(motion).family == "b2b":
        return generate_b2b(n, seed, out, events_per_lead=scale or 20.0, progress=progress)
    return generate_b2c(n, seed, out, sessions_scale=scale or 1.0, progress=progress)


def read_truth(data_dir: str | Path) -> pd.DataFrame:
    return pd.read_parquet(Path(data_dir) / "truth.parquet")
