"""What a batch decided, kept with the state it decided it for.

Why: each agent reads two topics (an order its commands or updates and the
SKU owners' answers; a SKU owner its movements and the orders' commands),
and after a crash the records of both come back in whatever order the
fetches bring them. A re-run that decides differently from the first run
contradicts records already sent: the long chaos run saw a ship consumed at
the owner in the first run and dead-lettered as exceeding its shipment in
the re-run, after a revocation got in first. So every key's state is
written with the records its batch decided (its outbox), and only once that
state is in the changelog do the records go out (agents/batches.py). The
next batch that reads the key sends those records again, byte for byte,
unless the partition's "sent through" mark (tables/stock.py) says they were
acknowledged already; a record of that batch seen again finds its decision
there and is not decided anew.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import metrics

if TYPE_CHECKING:
    from ..app import Runtime

# How many bytes of records one key's outbox may gather before its batch
# ends early (agents/batches.py). The outbox is written inside the key's
# state, one changelog record, and Kafka refuses a record over 1 MB: its
# write crashed the agent, again on every restart (docs/reliability.md,
# bug 24). A best-seller stocked at 500 nodes answers each reserve with
# its ATP at all of them, 9 KB, so about 110 reserves of it in one batch
# passed the limit. The records are text inside the state's JSON (a fifth
# more with their quotes escaped), and the state itself needs room too.
OUTBOX_BUDGET = 384 * 1024


class Outbox:
    """Per key: the records decided in this batch, the inputs they were
    decided from, and the outbox the key's state was last written with."""

    def __init__(self) -> None:
        self.states: dict[str, tuple[Any, Any]] = {}  # key -> (state, last event)
        self.outbox: dict[str, list[list]] = {}  # key -> [[topic, key, value text], ...]
        self.inputs: dict[str, list[list]] = {}  # key -> [[source, offset], ...] decided in this batch
        self.stored_box: dict[str, dict | None] = {}  # key -> outbox of its last written state
        self.resent: set[str] = set()  # keys whose stored records this batch sends again
        # partition -> its "sent through" mark, read once a batch: the mark
        # is written only after the batch's handlers ran (agents/batches.py),
        # and a batch of replies reads it for nearly every key it loads.
        self.sent_marks: dict[int, dict[str, int]] = {}
        self.box_bytes: dict[str, int] = {}  # key -> bytes of its outbox's records
        self.largest = 0  # the most of any key

    def remember_stored(self, rt: "Runtime", key: str, box: dict | None) -> None:
        """Called when a batch first reads the key's state. Records the state
        carries that are not known to have been acknowledged go out again
        now, with whatever this batch decides for the key, and stay in its
        outbox: waiting for the redelivery of their inputs was not enough,
        since after a crash a record of the key's other topic can come
        first, and its decision replaced the stored records before they were
        ever sent (the short chaos run: a dead letter lost this way)."""
        if key in self.stored_box:
            return
        self.stored_box[key] = box
        if box and box["records"] and not _known_sent(rt, box, self.sent_marks):
            self.resent.add(key)
            for record in box["records"]:
                self.outbox.setdefault(key, []).append(list(record))
                self._count(key, len(record[2]))
            for seen in box["inputs"]:
                self.decided(key, *seen)
            metrics.OUTBOX_RESENT.inc(len(box["records"]))

    def send(self, key: str, topic: str, record_key: str | bytes | None, value: bytes) -> None:
        if isinstance(record_key, bytes):
            record_key = record_key.decode("utf-8")
        self.outbox.setdefault(key, []).append([topic, record_key, value.decode("utf-8")])
        self._count(key, len(value))

    def _count(self, key: str, size: int) -> None:
        held = self.box_bytes[key] = self.box_bytes.get(key, 0) + size
        if held > self.largest:
            self.largest = held

    def full(self) -> bool:
        """Whether some key's records fill its budget: the batch ends here."""
        return self.largest >= OUTBOX_BUDGET

    def decided(self, key: str, source: str, offset: int) -> None:
        inputs = self.inputs.setdefault(key, [])
        # One record may carry several decisions (streams/answers.py): listed once.
        if not inputs or inputs[-1][1] != offset or inputs[-1][0] != source:
            inputs.append([source, offset])

    def box_to_store(self, key: str) -> dict | None:
        """The outbox to write with the key's state. Only records need
        keeping: a batch that sent none has nothing a re-run could
        contradict, and earlier batches' records were acknowledged before
        this batch began. A state written again without a decision (a
        redelivery's rewrite) keeps what it carried."""
        if key not in self.inputs:
            return self.stored_box.get(key)
        records = self.outbox.get(key)
        return {"inputs": self.inputs[key], "records": records} if records else None

    def release(self, emit: Any) -> None:
        """Hand the records to the producer: only once the states carrying
        them are in the changelog."""
        for records in self.outbox.values():
            for topic, record_key, value in records:
                emit.send_raw(topic, record_key, value.encode("utf-8"))

    def replayed(self, rt: "Runtime", key: str, source: str, offset: int, event: Any) -> bool:
        """Whether the record was decided in the batch whose outbox the key's
        state carries. If so that decision stands: the caller decides
        nothing (its records went out again when the state was read, unless
        known to have been acknowledged)."""
        box = self.stored_box.get(key)
        if not box or [source, offset] not in box["inputs"]:
            return False
        metrics.DUPLICATES_SKIPPED.labels(event.message.topic).inc()
        return True


def _known_sent(rt: "Runtime", box: dict, marks: dict[int, dict[str, int]]) -> bool:
    """Whether every input of a stored outbox is at or below the partition's
    "sent through" mark (agents/batches.py:_mark_sent): its records went out.
    Every input of a key comes from the same partition number (the topics
    are co-partitioned), which is also the bound event's."""
    partition = int(box["inputs"][0][0].rsplit(":", 1)[1])
    sent = marks.get(partition)
    if sent is None:
        sent = marks[partition] = rt.seen.sent_through(partition)
    return all(offset <= sent.get(source, -1) for source, offset in box["inputs"])
