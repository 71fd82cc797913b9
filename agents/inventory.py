"""The owner of each SKU's stock: movements and reservation commands.

One agent takes both topics (both keyed by SKU, co-partitioned), so every
change to a SKU's state is decided by one worker, one record at a time: the
single-owner rule that makes oversell impossible.

Thin by design: decode, check, call the pure functions (domain/atp.py,
domain/reservations.py), write. Work is taken in micro-batches; a batch
writes each SKU's state once and one availability event per SKU and node it
changed (the last figures win).
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from .. import metrics
from ..domain import reservations as owner
from ..domain.atp import Backorder, SkuState, advance, apply_movement, availability_rows
from ..domain.idempotency import Seen
from ..domain.sourcing import LineRequest, SourcingRequest, source
from ..streams.codec import decode_key
from ..streams.events import Availability, InventoryMovement
from ..streams.exceptions import DecodeError
from ..tables.context import bind_event
from ..tables.replica import atp_key
from .batches import decode_keyed, first_sight, raw_topics, run_batches
from .emit import now, observe_latency
from .outbox import Outbox

if TYPE_CHECKING:
    from ..app import Runtime

COMMANDS = {"reserve", "release", "consume", "backorder", "short", "restock", "unrevoke"}


class StockBatch(Outbox):
    """One batch of the stock agent: each SKU's state written once at its
    end, one availability event per SKU and node it changed, and the
    answers to orders it decided (the outbox, agents/outbox.py: here a
    re-run could grant a reserve the first run refused, or revoke what it
    left, after the order acted on the first answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.touched: dict[tuple[str, str], Any] = {}  # (sku, node) -> last event

    def state(self, rt: "Runtime", sku: str) -> SkuState:
        held = self.states.get(sku)
        if held:
            return held[0]
        state, box = rt.stock.load(sku)
        self.remember_stored(rt, sku, box)
        return state

    def keep(self, state: SkuState, event: Any, changed: tuple[str, ...]) -> None:
        self.states[state.sku] = (state, event)
        for node_id in changed:
            self.touched[(state.sku, node_id)] = event


def make_pick(rt: "Runtime"):
    radius = rt.settings.same_day_radius_km

    def pick(sku: str, b: Backorder, free: dict[str, int]) -> dict[str, int]:
        req = SourcingRequest(
            method=b.method,
            lines=(LineRequest(b.line_id, sku, b.qty),),
            lat=b.lat,
            lon=b.lon,
            pickup_node_id=b.pickup_node_id,
            exclude_nodes=frozenset(b.exclude),
            same_day_radius_km=radius,
        )
        nodes = rt.node_view.nodes
        plan = source(req, nodes, {(sku, n): q for n, q in free.items()}, rt.capacity_view.left(nodes))
        return {sh.node_id: sum(q for _, _, q in sh.lines) for sh in plan.shipments}

    return pick


def _reply(rt: "Runtime", batch: StockBatch, sku: str, replies: tuple[dict, ...]) -> None:
    for r in replies:
        batch.send(sku, rt.topics.order_events, r["order_id"], orjson.dumps(r))


async def handle_movement(rt: "Runtime", event: Any, batch: StockBatch) -> None:
    msg = event.message
    m = decode_keyed(rt, msg, InventoryMovement, "sku")
    if m is None:
        return
    if rt.node_view.get(m.node_id) is None:
        await rt.node_view.catch_up()
        if rt.node_view.get(m.node_id) is None:
            rt.emit.dead_letter_record(msg, "unknown_node", f"node {m.node_id!r} is not in {rt.topics.nodes}")
            return
    source_tp = f"{msg.topic}:{msg.partition}"
    state = batch.state(rt, m.sku)
    if batch.replayed(rt, m.sku, source_tp, msg.offset, event):
        return
    seen = first_sight(rt, msg, m.sku, m.event_id, state.applied(source_tp, msg.offset))
    if seen is Seen.DUPLICATE:
        return
    if seen is Seen.REDELIVERED:
        # Applied before a crash: rewrite the state (batches.py says why) and
        # re-send the availability snapshot, which may have been lost.
        batch.keep(state, event, (m.node_id,))
        return
    before = state.node(m.node_id).on_hand
    result = apply_movement(state, m, source_tp, msg.offset)
    state, changed = result.state, set(result.changed_nodes)
    nodes = rt.node_view.nodes
    if result.short_nodes:
        revoked = owner.revoke_shortage(state, result.short_nodes, cause=m.event_id)
        state = revoked.state
        changed.update(revoked.changed_nodes)
        _reply(rt, batch, m.sku, revoked.replies)
    if state.backorders and state.node(m.node_id).on_hand > before:
        filled = owner.fill_backorders(state, nodes, m.event_id, rt.extras["pick"])
        state = filled.state
        changed.update(filled.changed_nodes)
        _reply(rt, batch, m.sku, filled.replies)
    batch.keep(state, event, tuple(sorted(changed)))
    batch.decided(m.sku, source_tp, msg.offset)


async def handle_command(rt: "Runtime", event: Any, batch: StockBatch) -> None:
    msg = event.message
    try:
        cmd = orjson.loads(msg.value)
        sku, kind, cmd_id = cmd["sku"], cmd["cmd"], cmd["cmd_id"]
        if kind not in COMMANDS or decode_key(msg.key) != sku:
            raise ValueError(f"bad command {kind!r} for key {msg.key!r}")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, DecodeError) as exc:
        rt.emit.dead_letter_record(msg, "bad_internal_command", str(exc)[:300])
        return
    source_tp = f"{msg.topic}:{msg.partition}"
    state = batch.state(rt, sku)
    if batch.replayed(rt, sku, source_tp, msg.offset, event):
        return
    seen = first_sight(rt, msg, sku, cmd_id, state.applied(source_tp, msg.offset))
    if seen is Seen.DUPLICATE:
        if kind == "reserve":
            _reply(rt, batch, sku, owner.answer_again(state, cmd, rt.node_view.nodes).replies)
        return
    if seen is Seen.REDELIVERED:
        # Applied before: its replies were acknowledged before the state was
        # written (batches.py), so nothing is re-run. Re-running a reserve
        # would restore a holding that a later consume, release or revocation
        # lowered (found by tests/chaos). Rewrite the state (batches.py says why).
        batch.keep(state, event, ())
        return
    nodes = rt.node_view.nodes
    pick = rt.extras["pick"]
    if kind == "reserve":
        result = owner.reserve(state, cmd, nodes)
    elif kind == "release":
        result = owner.release(state, cmd, nodes, pick)
    elif kind == "consume":
        result = owner.consume(state, cmd, nodes)
    elif kind == "short":
        result = owner.short(state, cmd, nodes)
    elif kind == "restock":
        result = owner.restock(state, cmd, nodes, pick)
    elif kind == "unrevoke":
        result = owner.unrevoke(state, cmd, nodes)
    else:
        result = owner.add_backorders(state, cmd, nodes, pick)
    if result.oversell:
        metrics.OVERSELL_VIOLATIONS.inc(result.oversell)
    offsets = advance(result.state.offsets, source_tp, msg.offset)
    batch.keep(replace(result.state, offsets=offsets), event, result.changed_nodes)
    batch.decided(sku, source_tp, msg.offset)
    _reply(rt, batch, sku, result.replies)


def flush(rt: "Runtime", batch: StockBatch) -> None:
    for sku, (state, event) in batch.states.items():
        bind_event(event)
        rt.stock.put(state, batch.box_to_store(sku))
    at = now()
    nodes = rt.node_view.nodes
    # Grouped by SKU: network ATP sums over all of a SKU's nodes, once per
    # SKU rather than once per changed node (a snapshot, one count per node,
    # changes them all).
    by_sku: dict[str, list[tuple[str, Any]]] = {}
    for (sku, node_id), event in batch.touched.items():
        by_sku.setdefault(sku, []).append((node_id, event))
    for sku, touched in by_sku.items():
        bind_event(touched[0][1])
        state = batch.state(rt, sku)
        rows = availability_rows(state, [node_id for node_id, _ in touched], nodes)
        for row, (node_id, event) in zip(rows, touched):
            bind_event(event)
            rt.emit.send(rt.topics.availability, sku, Availability(**row, occurred_at=at))
            rt.emit.send_raw(rt.topics.atp_view, atp_key(sku, node_id), str(row["atp"]).encode())
            metrics.AVAILABILITY_EVENTS.inc()
            if event.message.topic == rt.topics.movements:
                observe_latency(rt.topics.movements, event.message.timestamp)


def register(rt: "Runtime") -> None:
    rt.extras["pick"] = make_pick(rt)
    handlers = {rt.topics.movements: handle_movement, rt.topics.sku_commands: handle_command}

    @rt.app.agent(raw_topics(rt, *handlers), name="stock", concurrency=1)
    async def stock(stream):
        await rt.node_view.ready.wait()
        await run_batches(rt, stream, StockBatch, handlers, flush)
