"""The garbage collector set for a long-running scoring process (a service worker, the stream consumer).

Such a process holds a large heap that never changes (models, MLflow, the frameworks) and allocates in bursts: a
body of 1,000 events or scores makes a few dicts per item, which live until the body is answered. With CPython's
defaults (a young collection every 700 allocations) those survive two collections and are promoted to the old
generation, whose full collections walk the whole heap. Taking in 1,000-event bodies in one process (one event
per customer), collections took 30% of the time with the defaults, 10% with the heap frozen, 4% with the
thresholds below as well."""

from __future__ import annotations

import gc

# A young collection every 50,000 net allocations: most of a body's objects are gone before one sees them (at
# 10,000, young collections still took 5% of an events worker's time: they came mid-body, with its contexts
# alive; at 50,000, 0.2%). The later thresholds are CPython's.
THRESHOLDS = (50_000, 10, 10)


def settle() -> None:
    """Collect once, move what is alive now out of the collector's sight (``gc.freeze``: a full collection then
    walks only what was allocated since, never the models), and set the thresholds. Called after start-up and
    after each champion reload: what an earlier call froze is put back first, so a replaced model is freed."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
