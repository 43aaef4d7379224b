"""How a serving process runs Python's cyclic garbage collector.

An attempt allocates many short-lived containers (coroutines, futures, rows, option lists)
and almost no reference cycles: refcounting frees them. With CPython's default first
threshold (700 allocations) a burst of 20,000 due tasks ran about 1,600 collections that
freed nothing and took a quarter of the event loop's time, most of it traversing what
start-up made (modules, validation schemas) and the leased tasks held in memory.

So a serving process freezes what start-up made (never traversed again) and collects its
young objects every `FIRST_THRESHOLD` allocations; the older generations keep CPython's
ratios. Cycles are still collected, only less often.
"""

from __future__ import annotations

import gc

FIRST_THRESHOLD = 50_000


def tune_for_serving() -> None:
    """Call once start-up is done, just before serving."""
    gc.collect()  # start-up's own cycles go now instead of being frozen forever
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(FIRST_THRESHOLD, second, third)
