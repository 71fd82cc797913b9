"""The clock both bench baselines keep (``bench_naive_faust``, ``bench_quix``).

Counts the events an aggregation has taken, notes when the untimed warm-up
ends, and once the N-th event is in writes ``{"n", "from", "first", "done"}``
(``time.monotonic()`` when the ``from``-th and the N-th event were taken) to
the result file, atomically, for ``stockflow bench`` to read.
"""
from __future__ import annotations

import json
import os
import time


class Clock:
    def __init__(self, expect: int, warmup: int, result: str) -> None:
        self.expect, self.start_at, self.result = expect, max(1, warmup), result
        self.n = 0
        self.first: float | None = None
        self.written = False

    def tick(self) -> bool:
        """Count one event; True once, when the N-th is in and the result is written."""
        self.n += 1
        if self.n == self.start_at:
            self.first = time.monotonic()
        if self.n < self.expect or self.written:
            return False
        self.written = True
        tmp = self.result + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"n": self.n, "from": self.start_at, "first": self.first, "done": time.monotonic()}, f)
        os.replace(tmp, self.result)
        return True
