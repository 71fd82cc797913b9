"""Inventory movements -> stock state and availability events.

Thin by design: decode, check, call the pure ATP functions, write. Work is
taken in micro-batches; a batch writes each SKU's state once and one
availability event per SKU and node it changed (the last figures win).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import metrics
from ..domain.atp import SkuState, apply_movement, availability_rows
from ..domain.idempotency import Seen, classify, dedupe_key, position
from ..streams.codec import decode, decode_key
from ..streams.events import Availability, InventoryMovement
from ..streams.exceptions import DecodeError
from ..tables.context import bind_event
from .emit import now, observe_latency

if TYPE_CHECKING:
    from ..app import Runtime


class MovementBatch:
    """What one batch changed, written once at its end."""

    def __init__(self) -> None:
        self.states: dict[str, tuple[SkuState, Any]] = {}  # sku -> (state, last event)
        self.touched: dict[tuple[str, str], Any] = {}  # (sku, node) -> last event

    def state(self, rt: "Runtime", sku: str) -> SkuState:
        held = self.states.get(sku)
        return held[0] if held else rt.stock.get(sku)


async def handle(rt: "Runtime", event: Any, batch: MovementBatch) -> None:
    # Faust reads and writes a table in the partition of the current event.
    bind_event(event)
    msg = event.message
    metrics.EVENTS_PROCESSED.labels(msg.topic).inc()
    try:
        key = decode_key(msg.key)
        m = decode(msg.value, InventoryMovement, rt.settings.max_payload_bytes)
    except DecodeError as exc:
        rt.emit.dead_letter_record(msg, exc.reason, exc.detail)
        return
    if key != m.sku:
        rt.emit.dead_letter_record(msg, "key_mismatch", f"key {key!r} is not sku {m.sku!r}")
        return
    if rt.node_view.get(m.node_id) is None:
        await rt.node_view.catch_up()
        if rt.node_view.get(m.node_id) is None:
            rt.emit.dead_letter_record(msg, "unknown_node", f"node {m.node_id!r} is not in {rt.topics.nodes}")
            return

    source = f"{msg.topic}:{msg.partition}"
    here = position(msg.topic, msg.partition, msg.offset)
    dkey = dedupe_key(m.sku, m.event_id)
    state = batch.state(rt, m.sku)
    seen = classify(rt.seen.get(dkey), here, state.applied(source, msg.offset))
    if seen is Seen.DUPLICATE:
        metrics.DUPLICATES_SKIPPED.labels(msg.topic).inc()
        return
    rt.seen.put(dkey, here)
    if seen is Seen.REDELIVERED:
        # Applied before a crash; its availability event may not have been
        # written, and re-sending a snapshot is harmless.
        metrics.DUPLICATES_SKIPPED.labels(msg.topic).inc()
        batch.touched[(m.sku, m.node_id)] = event
        return
    result = apply_movement(state, m, source, msg.offset)
    batch.states[m.sku] = (result.state, event)
    for node_id in result.changed_nodes:
        batch.touched[(m.sku, node_id)] = event
    # result.short_nodes: re-sourcing reservations arrives with orders.


def flush(rt: "Runtime", batch: MovementBatch) -> None:
    for state, event in batch.states.values():
        bind_event(event)
        rt.stock.put(state)
    at = now()
    nodes = rt.node_view.nodes
    for (sku, node_id), event in batch.touched.items():
        bind_event(event)
        state = batch.state(rt, sku)
        for row in availability_rows(state, (node_id,), nodes):
            rt.emit.send(rt.topics.availability, sku, Availability(**row, occurred_at=at))
            metrics.AVAILABILITY_EVENTS.inc()
        observe_latency(rt.topics.movements, event.message.timestamp)


def register(rt: "Runtime") -> None:
    topic = rt.faust_topics[rt.topics.movements]

    @rt.app.agent(topic, name="inventory", concurrency=1)
    async def inventory(stream):
        await rt.node_view.ready.wait()
        async for events in stream.take_events(rt.settings.batch_size, rt.settings.batch_within_s):
            batch = MovementBatch()
            for event in events:
                await handle(rt, event, batch)
            flush(rt, batch)
