"""The one loop every keyed agent runs: micro-batches from two co-partitioned topics."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .. import metrics
from ..app import committed_or_start, hold_back, seek_in_order, seeked_generation
from ..domain.idempotency import Seen, classify, dedupe_key, position
from ..streams.codec import decode, decode_key
from ..streams.exceptions import DecodeError
from ..streams.inbox import open_inbox, take_batches
from ..tables import writes as table_writes
from ..tables.context import bind_event
from . import trace
from .inorder import GAP_PATIENCE_S, InOrder, Verdict

if TYPE_CHECKING:
    from ..app import Runtime

Handler = Callable[["Runtime", Any, Any], Awaitable[None]]
log = logging.getLogger(__name__)
# Longest wait for the seek that starts a generation (app.py); after it the
# records are taken as they come, as before this guard existed.
SEEK_WAIT_S = 60.0
RESEEK_CHECK_S = 0.5


def raw_topics(app: Any, *names: str) -> Any:
    """One Faust channel over several topics, bytes in and out (we decode),
    and the inbox their records reach the agent through (streams/inbox.py),
    opened now, before the worker fetches. Faust never decodes these
    records: the inbox hands over the record, and we decode its bytes
    ourselves (streams/codec.py)."""
    open_inbox(app, names)
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


async def run_batches(rt: "Runtime", stream: Any, new_batch: Callable[[], Any],
                      handlers: dict[str, Handler], flush: Callable[["Runtime", Any], None]) -> None:
    """Handle each event by its topic, write the batch once, then hand every
    output to the producer before the batch's events are acked."""
    order = InOrder(topics=frozenset(handlers))
    watchdog = asyncio.ensure_future(_seek_again_while_holes_stay(rt, order))
    try:
        await _batches(rt, stream, new_batch, handlers, flush, order)
    finally:
        watchdog.cancel()


async def _seek_again_while_holes_stay(rt: "Runtime", order: InOrder) -> None:
    while True:
        await asyncio.sleep(RESEEK_CHECK_S)
        for tp, offset in order.due():
            log.warning("%s:%d: records from %d still missing; reading again from there", tp.topic, tp.partition,
                        offset)
            try:
                await seek_in_order(rt.app.consumer, tp, offset)
            except Exception as exc:  # e.g. the partition moved away meanwhile: the next seek decides
                log.warning("seek %s:%d to %d failed: %r", tp.topic, tp.partition, offset, exc)


async def _batches(rt: "Runtime", stream: Any, new_batch: Callable[[], Any], handlers: dict[str, Handler],
                   flush: Callable[["Runtime", Any], None], order: InOrder) -> None:
    batches = take_batches(rt.app, stream.channel, rt.settings.batch_size, rt.settings.batch_within_s)
    try:
        await _each_batch(rt, batches, new_batch, handlers, flush, order)
    finally:
        # Now, not when the generator is collected: a batch an exception left
        # is held back at once (streams/inbox.py).
        await batches.aclose()


async def _each_batch(rt: "Runtime", batches: Any, new_batch: Callable[[], Any], handlers: dict[str, Handler],
                      flush: Callable[["Runtime", Any], None], order: InOrder) -> None:
    async for events in batches:
        producer = rt.app.producer._ensure_producer()  # aiokafka's, for its batch API
        rest = events
        while rest:
            batch = new_batch()
            # This agent's table writes of this batch (tables/writes.py).
            writes = table_writes.begin()
            handled = []
            taken = 0
            for event in rest:
                taken += 1
                if not await _in_order(rt, order, event.message):
                    continue
                handled.append(event)
                # Faust reads and writes a table in the partition of the current event.
                bind_event(event)
                if trace.TRACE:
                    trace.handled(event.message)
                metrics.labelled(metrics.EVENTS_PROCESSED, event.message.topic).inc()
                await handlers[event.message.topic](rt, event, batch)
                if batch.full():
                    # A key's records fill what its state's changelog record
                    # can carry (agents/outbox.py): written now, and the rest
                    # of the events, still in order, as the next batch.
                    break
            rest = rest[taken:]
            await _write(rt, batch, writes, handled, flush, producer)
        if trace.TRACE:
            trace.batch_done(events)


async def _write(rt: "Runtime", batch: Any, writes: Any, handled: list, flush: Callable[["Runtime", Any], None],
                 producer: Any) -> None:
    """Write a batch's states, then hand its records to the producer."""
    # The states first, each carrying the records its batch decided (its
    # outbox: agents/outbox.py says why); only once they are in the
    # changelog do those records go out. After a crash the next batch to
    # read a key sends them again instead of deciding anew, so a crash at
    # any point leaves either nothing or the same records.
    flush(rt, batch)
    written = await writes.send(producer)
    if batch.outbox:
        # Only this batch's changelog records: waiting for the whole
        # producer (producer.flush) also waited for the other agent's
        # outputs and halved orders/s (docs/benchmarks.md).
        await asyncio.gather(*written)
        batch.release(rt.emit)
    # Acknowledged before the next batch: only the last batch's records
    # can still be on their way, and only they are kept in the states.
    await rt.emit.drain(delivered=True)
    await asyncio.gather(*written)
    if batch.outbox:
        _mark_sent(rt, handled)
        # Not waited for: a mark lost in a crash only means identical
        # re-sends, and Faust's commit flushes the producer first.
        await writes.send(producer)


def _mark_sent(rt: "Runtime", handled: list) -> None:
    """Remember that the records decided from these inputs are acknowledged,
    so they need not be sent again after a crash (the outbox is still there
    for the crash that comes before this is written). Only handled inputs
    count: they come in offset order per partition, so every input at or
    below the mark was handled here or earlier; a stored outbox sent again
    because its key was read is not marked, since other keys' outboxes of
    the same lost batch may still wait for their first read."""
    last: dict[int, tuple[Any, dict[str, int]]] = {}
    for event in handled:
        msg = event.message
        _, offsets = last.get(msg.partition, (None, {}))
        source = f"{msg.topic}:{msg.partition}"
        offsets[source] = max(msg.offset, offsets.get(source, -1))
        last[msg.partition] = (event, offsets)
    for partition, (event, offsets) in last.items():
        bind_event(event)
        rt.seen.mark_sent(partition, offsets)


async def _in_order(rt: "Runtime", order: InOrder, msg: Any) -> bool:
    """Whether to handle this record now (agents/inorder.py says why)."""
    consumer = rt.app.consumer
    generation = msg.generation_id
    deadline = time.monotonic() + SEEK_WAIT_S
    seeked = seeked_generation(consumer)
    while generation is not None and (seeked is None or seeked[0] < generation):
        if generation != rt.app.consumer_generation_id:
            break  # a newer rebalance began: this record is stale
        if time.monotonic() > deadline:
            log.warning("no seek finished for generation %s after %.0f s: records taken as they come",
                        generation, SEEK_WAIT_S)
            break
        await asyncio.sleep(0.02)
        seeked = seeked_generation(consumer)
    if generation is not None and generation != rt.app.consumer_generation_id:
        hold_back(consumer, msg)
        return False
    if seeked is not None and seeked[2] != order.generation:
        order.new_generation(seeked[2], seeked[1])
    verdict, seek_to = order.admit(msg.tp, msg.offset)
    if verdict is Verdict.ASK:
        # Every such partition at once: one trip to the consumer's thread.
        try:
            starts = await committed_or_start(consumer, order.unknown())
        except Exception as exc:  # broker away: hold it, its next fetch asks again
            log.warning("%s:%d: no committed offset found by the seek, and asking failed (%r): holding back",
                        msg.topic, msg.partition, exc)
            hold_back(consumer, msg)
            await seek_in_order(consumer, msg.tp, msg.offset)
            return False
        for tp, (start, committed) in starts.items():
            # A fresh group has no committed offset: normal. One found now
            # that the seek did not find is bug 20's race (docs/reliability.md).
            (log.warning if committed else log.info)(
                "%s:%d: the seek found no committed offset; asked again: %s %d", tp.topic, tp.partition,
                "committed" if committed else "none, the partition's first offset", start)
            order.start(tp, start)
        verdict, seek_to = order.admit(msg.tp, msg.offset)
    if verdict is Verdict.HANDLE:
        return True
    if verdict is Verdict.SEEN:
        return False
    if verdict is Verdict.JUMP:
        log.error("%s:%d: records before offset %d never came back after %.0f s; going on from %d",
                  msg.topic, msg.partition, msg.offset, GAP_PATIENCE_S, msg.offset)
        metrics.RECORDS_HELD_BACK.labels(msg.topic).inc()
        return True
    hold_back(consumer, msg)
    metrics.RECORDS_HELD_BACK.labels(msg.topic).inc()
    if seek_to is not None:
        log.warning("%s:%d: offset %d arrived while %d was expected; holding it back and reading again from %d",
                    msg.topic, msg.partition, msg.offset, seek_to, seek_to)
        await seek_in_order(consumer, msg.tp, seek_to)
    if trace.TRACE:
        trace.handled(msg)
    return False


def decode_keyed(rt: "Runtime", msg: Any, model: type, key_field: str) -> Any | None:
    """The record as a contract event, or None once it is dead-lettered
    (bad bytes, bad fields, or a key that is not the event's own key field)."""
    try:
        key = decode_key(msg.key)
        event = decode(msg.value, model, rt.settings.max_payload_bytes)
    except DecodeError as exc:
        rt.emit.dead_letter_record(msg, exc.reason, exc.detail)
        return None
    own = getattr(event, key_field)
    if key != own:
        rt.emit.dead_letter_record(msg, "key_mismatch", f"key {key!r} is not {key_field} {own!r}")
        return None
    return event


def first_sight(rt: "Runtime", msg: Any, record_key: str, event_id: str, applied: bool) -> Seen:
    """Classify a record (new, redelivered after a crash, or a duplicate
    event_id) and remember where its event_id was first seen."""
    here = position(msg.topic, msg.partition, msg.offset)
    dkey = dedupe_key(record_key, event_id)
    first = rt.seen.get(dkey)
    seen = classify(first, here, applied)
    # Written again on a redelivery: see the note at the end of this module.
    if seen is Seen.REDELIVERED or (seen is Seen.NEW and first != here):
        rt.seen.put(dkey, here)
    if seen is not Seen.NEW:
        metrics.DUPLICATES_SKIPPED.labels(msg.topic).inc()
    return seen


# Why a redelivered record rewrites its key's state (inventory.py's
# REDELIVERED branches, orders.py's ``_rewrite_on_redelivery``): a worker restarted on its own data dir may hold a local
# state ahead of the changelog (written after the last commit, its changelog
# record lost with the process). The redelivery sees "applied" and changes
# nothing, so without a rewrite the changelog would stay behind, and the next
# worker to own the partition would restore the stale value and lose updates
# (found by tests/chaos). Every such key has a redelivered record, since the
# changelog is flushed before each commit.
