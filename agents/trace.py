"""Developer aid for post-mortems (``STOCKFLOW_TRACE_BATCHES=1``): log every
batch's offsets, every fetch, seek and commit, and any ack of a record no
handler saw. It found the dropped-queue loss (docs/reliability.md, bug 9)."""
from __future__ import annotations

import logging
import os
import traceback
from typing import Any

log = logging.getLogger(__name__)
TRACE = os.environ.get("STOCKFLOW_TRACE_BATCHES") == "1"
_handled: set[tuple[str, int, int]] = set()


def _short(tp: Any) -> tuple[str, int]:
    return tp.topic.rsplit(".", 1)[-1], tp.partition


def handled(message: Any) -> None:
    _handled.add((message.topic, message.partition, message.offset))


def batch_done(events: list) -> None:
    spans: dict = {}
    for e in events:
        m = e.message
        lo, hi = spans.get((m.topic, m.partition), (m.offset, m.offset))
        spans[(m.topic, m.partition)] = (min(lo, m.offset), max(hi, m.offset))
    log.warning("batch %s", sorted((t.rsplit(".", 1)[-1], p, lo, hi) for (t, p), (lo, hi) in spans.items()))


def install() -> None:
    from faust.transport.consumer import Consumer

    if getattr(Consumer, "_stockflow_traced", False):
        return
    ack, commit = Consumer.ack, Consumer._commit_offsets
    seek, fetch = Consumer.perform_seek, Consumer._wait_next_records

    def _ack(self, message):
        key = (message.topic, message.partition, message.offset)
        if not message.topic.endswith(".nodes") and key not in _handled:
            log.warning("UNHANDLED ACK %s\n%s", key, "".join(traceback.format_stack(limit=12)))
        return ack(self, message)

    async def _commit_offsets(self, offsets, start_new_transaction=True):
        log.warning("COMMIT %s", sorted((*_short(tp), o) for tp, o in offsets.items()))
        return await commit(self, offsets, start_new_transaction)

    async def _perform_seek(self):
        await seek(self)
        log.warning("SEEK committed %s", sorted((*_short(tp), o) for tp, o in self._committed_offset.items() if o is not None))

    async def _wait_next_records(self, timeout):
        records, active = await fetch(self, timeout)
        if records:
            log.warning("FETCHED %s gen=%s flow=%s",
                        sorted((*_short(tp), rs[0].offset, rs[-1].offset) for tp, rs in records.items() if rs),
                        self.app.consumer_generation_id, self.flow_active)
        return records, active

    Consumer.ack, Consumer._commit_offsets = _ack, _commit_offsets
    Consumer.perform_seek, Consumer._wait_next_records = _perform_seek, _wait_next_records
    Consumer._stockflow_traced = True
