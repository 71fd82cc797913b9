"""Records of a partition reach the handlers in offset order, from the
committed offset on, or not at all: pure bookkeeping, no I/O.

Why: a key's state remembers the highest input offset it applied, and a
record at or below it counts as a redelivery (domain/idempotency.py). Faust
can hand a worker records out of order around a rebalance: the chaos suite
saw records 127-130 of a partition handled before the recovery's seek to the
committed offset 124 had finished, the first fetch (124-126) gone; when the
seek brought 124-126 back they were skipped as "applied" and three movements
were lost. So a record past the next expected offset is held back (not
handled, not acknowledged) and the partition is sought back to where the
hole starts; a record below it was handled already in this generation.
"""
from __future__ import annotations

import time
from enum import Enum
from typing import Any, Callable, Hashable, Mapping

# How long a hole may persist after we asked for the missing records before
# we accept it (only retention deleting unread records makes a real hole in
# an append-only topic) and go on from what arrives.
GAP_PATIENCE_S = 60.0
# How often to ask again while the missing records do not come. Asking can
# fail: records fetched before the seek and still on their way to the agent
# move Faust's read offset past the hole again, and Faust then drops the
# records the seek brings back (found by tests/chaos).
RESEEK_EVERY_S = 2.0


class Verdict(Enum):
    HANDLE = "handle"  # next in order: handle it
    SEEN = "seen"  # handled already in this generation (a re-fetch), or below the commit
    HOLD = "hold"  # past a hole: do not handle, do not acknowledge
    JUMP = "jump"  # past a hole we gave up on: handle it, and say so loudly
    ASK = "ask"  # the seek found no committed offset here: ask for it (``start``), then admit again


class InOrder:
    def __init__(self, clock: Callable[[], float] = time.monotonic, topics: frozenset[str] | None = None) -> None:
        self.clock = clock
        self.topics = topics  # the agent's own topics (None: every partition is its own)
        self.generation: Any = None
        self.committed: Mapping[Hashable, int] = {}
        self.next: dict[Hashable, int] = {}
        self.hole_seen: dict[tuple[Hashable, int], float] = {}
        self.sought: dict[tuple[Hashable, int], float] = {}

    def new_generation(self, generation: Any, committed: Mapping[Hashable, int | None]) -> None:
        """A rebalance (a seek to the committed offsets): each partition
        starts again there. ``generation`` tells one seek from the next.
        A partition the seek found no offset for (None) is asked about
        before any of its records is handled: a fresh group has none, but
        so had every partition of a seek right after a broker restart (the
        long chaos run), and taking records from wherever the fetcher stood
        lost one (its successor came first and made it look applied)."""
        self.generation = generation
        self.committed = dict(committed)
        self.next.clear()
        self.hole_seen.clear()
        self.sought.clear()

    def admit(self, tp: Hashable, offset: int) -> tuple[Verdict, int | None]:
        """The verdict on a record, and an offset to seek ``tp`` to, if any."""
        expected = self.next.get(tp, self.committed.get(tp))
        if expected is None and tp in self.committed and offset > 0:
            # (Offset 0 has nothing before it: a fresh topic starts without
            # asking, which cost a trip to the consumer's thread, up to 1.5 s.)
            return Verdict.ASK, None
        if expected is None or offset == expected:
            self.next[tp] = offset + 1
            return Verdict.HANDLE, None
        if offset < expected:
            return Verdict.SEEN, None
        now = self.clock()
        hole = (tp, expected)
        first = self.hole_seen.setdefault(hole, now)
        if now - first >= GAP_PATIENCE_S:
            self.next[tp] = offset + 1
            return Verdict.JUMP, None
        last = self.sought.get(hole)
        if last is None or now - last >= RESEEK_EVERY_S:
            self.sought[hole] = now
            return Verdict.HOLD, expected
        return Verdict.HOLD, None

    def unknown(self) -> list[Hashable]:
        """Partitions the seek found no offset for and not yet started."""
        return [tp for tp, o in self.committed.items() if o is None and self.next.get(tp) is None
                and (self.topics is None or getattr(tp, "topic", None) in self.topics)]

    def start(self, tp: Hashable, offset: int) -> None:
        """Where ``tp`` starts in this generation, as asked after an ASK."""
        if self.next.get(tp) is None:
            self.next[tp] = offset

    def due(self) -> list[tuple[Hashable, int]]:
        """Holes still open whose last seek is older than RESEEK_EVERY_S, to
        seek again now: called on a timer, since the records after a hole may
        all have arrived (and been held) already, and nothing else would ask."""
        now = self.clock()
        out = []
        for (tp, start), last in list(self.sought.items()):
            if self.next.get(tp, self.committed.get(tp)) != start:
                del self.sought[(tp, start)]  # filled
            elif now - last >= RESEEK_EVERY_S:
                self.sought[(tp, start)] = now
                out.append((tp, start))
        return out
