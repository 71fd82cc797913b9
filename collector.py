"""How a worker sets Python's cyclic garbage collector.

Why: a worker's heap is large and churns (the decoded SKU documents of
tables/stock.py, the replicated views, each batch's new states), and with
Python's default thresholds (700, 10, 10) its collector ran a full
collection every second or so, each walking every tracked object: 9.0 of
44.9 s of a worker's CPU in a bench run of 200,000 movements
(docs/benchmarks.md, session 17). Reference counting frees almost all of a
worker's garbage anyway; the collector is only for cycles, so it can run
far less often.
"""
from __future__ import annotations

import gc

# Python's own, restored by a threshold of 0 (tests, and an A/B's "before").
PYTHON_DEFAULT = (700, 10, 10)


def tune(first_threshold: int) -> tuple[int, int, int]:
    """Set the collector for a worker whose code is imported and whose app is
    built, and return the thresholds now in force. ``first_threshold`` is how
    many container allocations (net of frees) start a young collection; 0
    leaves Python's defaults and freezes nothing.

    What exists now (modules, classes, functions, the app: most of a worker's
    tracked objects, and alive until it exits) is frozen: no later collection
    walks it again."""
    if first_threshold <= 0:
        gc.set_threshold(*PYTHON_DEFAULT)
        return PYTHON_DEFAULT
    gc.collect()  # what is garbage already should not be frozen with the rest
    gc.freeze()
    thresholds = (first_threshold, 10, 10)
    gc.set_threshold(*thresholds)
    return thresholds
