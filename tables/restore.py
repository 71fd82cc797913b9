"""A faster reader for the changelog records Faust's recovery queues.

Faust's ``Recovery._slurp_changelogs`` takes one record per loop turn, with
an ``asyncio.wait_for`` task for each, and after each record sums a Counter
over every active partition to ask whether recovery is done: 28% of a
restoring worker's main thread (docs/benchmarks.md). This reader takes every
record already queued (up to ``TURN``) in one turn and asks once per turn.

Its rules are Faust's: a record at or below the offset already seen for its
partition is skipped; records are applied in buffers of the table's buffer
size; recovery ends when no active partition has records left, and standbys
are ready when none has records left. One difference: a record of a
partition that is neither active nor standby any more (queued before a
rebalance) is skipped, where Faust's loop fell through and applied it to the
table of the record before it.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import Any

log = logging.getLogger(__name__)

# Records taken per loop turn before the loop yields, so the fetcher and the
# web server still get their turns during a long restore.
TURN = 2000


async def read_changelogs(self: Any) -> None:
    """Drop-in body for ``Recovery._slurp_changelogs`` (``self`` is Faust's
    ``Recovery`` service)."""
    queue = self.tables.changelog_queue
    _read_again_what_a_clear_drops(self, queue)
    timeouts = 0
    while not self.should_stop:
        try:
            self.signal_recovery_end.clear()
            if queue.empty():
                try:
                    first = await asyncio.wait_for(queue.get(), timeout=5.0)
                except asyncio.TimeoutError:
                    timeouts += 1
                    if self.should_stop:
                        return
                    await _maybe_end_recovery(self, timeouts)
                    continue
            else:
                first = queue.get_nowait()
            timeouts = 0
            events = [first]
            while len(events) < TURN and not queue.empty():
                events.append(queue.get_nowait())
            await _apply(self, events)
            await _maybe_end_recovery(self, 0)
            _maybe_standbys_ready(self)
            if len(events) >= TURN:
                await asyncio.sleep(0)
        except Exception as exc:  # Faust's loop logs and goes on too: a dead reader would stall every restore
            log.warning("Error in recovery %r", exc)


# How long the reader waits for a cleared partition's first record to come
# back before it asks again; after REWIND_TRIES asks it gives up waiting and
# applies what comes, loudly (a seek that never lands must not stall a
# restore for good, but one lost ask must not leave a hole in the store).
REWIND_PATIENCE_S = 30.0
REWIND_TRIES = 3


def _read_again_what_a_clear_drops(self: Any, queue: Any) -> None:
    """Faust clears the changelog queue whenever flow resumes (it is made
    with ``clear_on_resume``), counting on the recovery's next seek to fetch
    the records again. A resume also comes at the end of a recovery, after
    the standbys' seek: records queued then were gone for good, the next
    ones moved the standby's offset past them, and a store restored that
    way lacked them (the long chaos run: 74 orders unknown to the worker
    that owned their partition; docs/reliability.md, bug 21). So a clear
    now sends each partition it emptied back to its lowest cleared offset,
    and until that record comes back the reader drops the partition's later
    records (they come again after it): the changelog is applied in order,
    with nothing skipped."""
    if getattr(queue, "_stockflow_read_again", False):
        return
    clear = queue.clear
    self._stockflow_rewind = {}

    def clear_and_read_again() -> None:
        lowest: dict = {}
        for event in list(getattr(queue, "_queue", ())):
            message = event.message
            if message.offset < lowest.get(message.tp, message.offset + 1):
                lowest[message.tp] = message.offset
        clear()
        if lowest:
            generation, now = self.app.consumer_generation_id, monotonic()
            for tp, offset in lowest.items():
                self._stockflow_rewind[tp] = (offset, generation, now, 1)
            asyncio.ensure_future(_read_again(self, lowest))

    queue.clear = clear_and_read_again
    queue._stockflow_read_again = True


async def _read_again(self: Any, lowest: dict) -> None:
    from aiokafka import TopicPartition

    from ..app import seek_in_order

    consumer = self.app.consumer
    thread = consumer._thread
    aio = thread._ensure_consumer()
    for tp, offset in lowest.items():
        try:
            position = await thread.call_thread(aio.position, TopicPartition(tp.topic, tp.partition))
            if position is not None and position <= offset:
                continue  # not read past them yet: they come anyway
            log.warning("changelog queue cleared with records of %s:%d from offset %d; reading them again",
                        tp.topic, tp.partition, offset)
            await seek_in_order(consumer, tp, offset)
        except Exception as exc:
            if tp in _assignment(consumer):
                # still ours (a broker away, say): keep dropping what comes
                # after the hole; the patience in _rewound asks again
                log.warning("changelog %s:%d not read again from %d yet: %r", tp.topic, tp.partition, offset, exc)
                continue
            # not assigned any more: the next owner restores it
            self._stockflow_rewind.pop(tp, None)
            log.info("changelog %s:%d not read again from %d: %r", tp.topic, tp.partition, offset, exc)


def _assignment(consumer: Any) -> set:
    try:
        return set(consumer.assignment())
    except Exception:  # cannot tell: treat as gone, as before
        return set()


def _rewound(self: Any, tp: Any, offset: int, now: float) -> bool:
    """Whether to drop this record: its partition was cleared from a lower
    offset that has not come back yet."""
    rewind = getattr(self, "_stockflow_rewind", None)
    if not rewind or tp not in rewind:
        return False
    start, generation, since, tries = rewind[tp]
    if generation != self.app.consumer_generation_id:
        del rewind[tp]  # a new assignment: its recovery starts from its own offsets
        return False
    if offset == start:
        del rewind[tp]
        return False
    if offset < start:
        return False
    if now - since > REWIND_PATIENCE_S:
        if tries < REWIND_TRIES:
            rewind[tp] = (start, generation, now, tries + 1)
            log.warning("changelog %s:%d: offset %d not back after %.0f s; asking again", tp.topic, tp.partition,
                        start, REWIND_PATIENCE_S)
            asyncio.ensure_future(_read_again(self, {tp: start}))
            return True
        del rewind[tp]
        log.error("changelog %s:%d: offset %d never came back after %d asks; applying from %d", tp.topic,
                  tp.partition, start, tries, offset)
        return False
    return True


async def _apply(self: Any, events: list) -> None:
    now = monotonic()
    active_tps, standby_tps = self.active_tps, self.standby_tps
    tp_to_table, buffers, sizes = self.tp_to_table, self.buffers, self.buffer_sizes
    applied_active = 0
    for event in events:
        # As in Faust's loop, a record that fails costs that record, not
        # the rest of the turn.
        try:
            message = event.message
            tp, offset = message.tp, message.offset
            if _rewound(self, tp, offset, now):
                continue
            if tp in active_tps:
                offsets = self.active_offsets
                table = tp_to_table[tp]
                size = sizes.get(tp) or sizes.setdefault(tp, table.recovery_buffer_size)
                self._active_events_received_at[tp] = now
            elif tp in standby_tps:
                offsets = self.standby_offsets
                table = tp_to_table[tp]
                size = sizes.get(tp) or sizes.setdefault(tp, table.standby_buffer_size)
                self._standby_events_received_at[tp] = now
            else:
                log.debug("changelog record of %s offset %d: partition no longer assigned, skipped", tp, offset)
                continue
            seen = offsets.get(tp)
            if seen is not None and offset <= seen:
                continue
            if seen is not None and seen >= 0 and offset > seen + 1:
                _note_gap(self, tp, seen, offset)
            offsets[tp] = offset
            buf = buffers[table]
            buf.append(event)
            if table._on_changelog_event is not None:
                await table.on_changelog_event(event)
            if len(buf) >= size:
                table.apply_changelog_batch(buf)
                buf.clear()
                self._last_flush_at = now
            if offsets is self.active_offsets:
                applied_active += 1
        except Exception as exc:
            log.warning("Error in recovery %r", exc)
    if applied_active:
        # Faust keeps per-record processing times to estimate the time left;
        # one mean per turn keeps the estimate without a sample per record.
        done = monotonic()
        last = self._last_active_event_processed_at
        if last is not None:
            times = self._processing_times
            times.append((done - last) / applied_active)
            if len(times) > self.num_samples_required_for_estimate:
                times.popleft()
        self._last_active_event_processed_at = done


def _note_gap(self: Any, tp: Any, seen: int, offset: int) -> None:
    """Say so when a changelog partition's next record is not the one after
    the last applied: the records between never reached this reader. A
    compacted changelog has such gaps legitimately; where nothing was
    compacted (any test run) it is a hole in this store, the shape of
    docs/reliability.md's bug 23, and this line dates it. Once per partition
    and generation, so a restore of a compacted changelog stays quiet."""
    generation = getattr(getattr(self, "app", None), "consumer_generation_id", None)
    noted = getattr(self, "_stockflow_gaps", None)
    if noted is None:
        noted = self._stockflow_gaps = set()
    if (tp, generation) in noted:
        return
    noted.add((tp, generation))
    role = "active" if tp in self.active_tps else "standby"
    log.warning("changelog %s:%d (%s, generation %s): record %d follows %d; the %d between never reached "
                "the restore reader (compaction leaves such gaps; without it, a hole in this store)",
                tp.topic, tp.partition, role, generation, offset, seen, offset - seen - 1)


async def _maybe_end_recovery(self: Any, timeouts: int) -> None:
    # Faust waits for two empty turns before it looks for aborted
    # transactions, to let the consumer's position and the queue agree.
    if timeouts > 1 and self.app.in_transaction:
        await _skip_aborted_transactions(self)
    if self.in_recovery and not self.need_recovery():
        self.flush_buffers()
        self._set_recovery_ended()
        if self._actives_span is not None:
            self._actives_span.set_tag("Actives-Ready", True)
        self.signal_recovery_end.set()


def _maybe_standbys_ready(self: Any) -> None:
    if self._standbys_span is None and self.tables.standbys_ready:
        return
    if not self.standby_remaining_total():
        if self._standbys_span is not None:
            self._standbys_span.finish()
            self._standbys_span = None
        self.tables.on_standbys_ready()


async def _skip_aborted_transactions(self: Any) -> None:
    offsets = self.active_offsets
    for tp, highwater in self.active_highwaters.items():
        if highwater is None or offsets[tp] is None or offsets[tp] >= highwater:
            continue
        position = await self.app.consumer.position(tp)
        if position is not None and position >= highwater:
            log.info("Aborted transactions until the high water mark of %s", tp)
            offsets[tp] = highwater


def install() -> None:
    """Make every Faust recovery service read with ``read_changelogs``.
    mode starts a service's tasks by attribute name, so replacing the
    class attribute before the app starts is enough."""
    from faust.tables.recovery import Recovery
    from mode.services import ServiceTask

    if getattr(Recovery, "_stockflow_reader", False):
        return
    Recovery._slurp_changelogs = ServiceTask(read_changelogs)
    Recovery._stockflow_reader = True
