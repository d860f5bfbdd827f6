"""Python's cyclic garbage collector tuned for a stage's run: fewer, cheaper collections.

A stage keeps many objects alive at once (a part's rows, thousands of jobs and requests in flight); with the default
thresholds the collector runs every 700 allocations and, every hundred or so of those, walks every object of the
process (the imported libraries included). Measured on the paraphrase stage at 256 requests in flight, collections
took a fifth of its wall time and a quarter of its event loop's CPU (docs/benchmarks.md). During a stage, the objects
that exist before it (modules, the stage's setup) are frozen out of collections and the youngest generation is
collected after 50,000 allocations instead of 700; reference counting still frees everything not in a cycle at once.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

THRESHOLDS = (50_000, 20, 100)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Freeze what exists now and collect the young generation less often; both undone on exit."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
