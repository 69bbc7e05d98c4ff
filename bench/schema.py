"""Schema validation: the project's rule table (``leadscore.schema.coerce``) beside pandera on the same events.

Both cast a raw events table (timestamps as text, as a CSV export gives them) to the canonical types and check
the same rules: required and non-empty columns, allowed event types, non-negative numbers, timestamps not in
the future. Both must accept the clean table and both must reject a broken one; then rows per second are
compared. Run in its own process: ``python -m bench.schema [EVENTS]`` (default 50,000,000, the scale the
feature bench and the design work at).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd

from leadscore.motions import B2C_EVENT_TYPES
from leadscore.schema import TABLES, SchemaError, coerce


def events(n: int, seed: int = 0) -> pd.DataFrame:
    """A raw B2C events table of ``n`` rows with the generator's shape (text times, gaps where allowed)."""
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2026-02-01T00:00:00", "s").astype(np.int64)
    ts = pd.Series((t0 + rng.integers(0, 150 * 86_400, n)).astype("datetime64[s]")).dt.strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    price = np.round(rng.gamma(2.0, 30.0, n), 2)
    price[rng.random(n) < 0.3] = np.nan
    cats = np.array(["shoes", "apparel", "electronics", "home", None], dtype=object)
    return pd.DataFrame(
        {
            "event_id": pd.array(np.char.add("E", np.arange(n).astype(str)), dtype="str"),
            "ts": ts.astype("str"),
            "customer_id": pd.array(
                np.char.add("C", rng.integers(0, n // 40 + 1, n).astype(str)), dtype="str"
            ),
            "session_id": pd.array(np.char.add("S", rng.integers(0, n // 6 + 1, n).astype(str)), dtype="str"),
            "type": pd.array(
                np.asarray(B2C_EVENT_TYPES)[rng.integers(0, len(B2C_EVENT_TYPES), n)], dtype="str"
            ),
            "product_id": pd.array(np.where(rng.random(n) < 0.5, None, "P1"), dtype="str"),
            "category": pd.array(cats[rng.integers(0, len(cats), n)], dtype="str"),
            "price": price,
            "quantity": np.where(rng.random(n) < 0.5, np.nan, rng.integers(1, 3, n)),
        }
    )


def pandera_schema(now: pd.Timestamp):
    """The same rules as ``TABLES['b2c']['events']``, written for pandera."""
    import pandera.pandas as pa

    text = {"dtype": "str", "coerce": True}
    return pa.DataFrameSchema(
        {
            "event_id": pa.Column(**text, nullable=False),
            "ts": pa.Column("datetime64[ns]", coerce=True, nullable=False, checks=pa.Check.le(now)),
            "customer_id": pa.Column(**text, nullable=False),
            "session_id": pa.Column(**text, nullable=False),
            "type": pa.Column(**text, nullable=False, checks=pa.Check.isin(B2C_EVENT_TYPES)),
            "product_id": pa.Column(**text, nullable=True),
            "category": pa.Column(**text, nullable=True),
            "price": pa.Column(float, coerce=True, nullable=True, checks=pa.Check.ge(0)),
            "quantity": pa.Column(float, coerce=True, nullable=True, checks=pa.Check.ge(0)),
        },
        strict=False,
    )


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(n: int) -> dict:
    import pandera.errors

    df = events(n)
    table = TABLES["b2c"]["events"]
    now = pd.Timestamp("2026-12-01")
    schema = pandera_schema(now + pd.Timedelta(days=1))
    broken = df.head(10_000).copy()
    broken.loc[5, "type"] = "teleport"
    try:
        coerce(table, broken, now)
        raise AssertionError("the rule table accepted an unknown event type")
    except SchemaError:
        pass
    try:
        schema.validate(broken, lazy=True)
        raise AssertionError("pandera accepted an unknown event type")
    except pandera.errors.SchemaErrors:
        pass
    ours = _seconds(lambda: coerce(table, df, now))
    peer = _seconds(lambda: schema.validate(df))
    return {
        "events": n,
        "rule_table_s": round(ours, 1),
        "pandera_s": round(peer, 1),
        "rule_table_rows_per_s": round(n / ours),
        "pandera_rows_per_s": round(n / peer),
        "speedup_vs_pandera": round(peer / ours, 2),
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000_000)))
