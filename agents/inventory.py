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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .. import metrics
from ..domain import reservations as owner
from ..domain.atp import (Backorder, SkuState, advance, apply_movement, apply_movements, availability_rows,
                          evolve)
from ..domain.idempotency import Seen
from ..domain.sourcing import LineRequest, SourcingRequest, source
from ..streams import answers
from ..streams.codec import datetime_text, decode_key, encode, encode_availability
from ..streams.events import InventoryMovement, InventoryMovementBatch
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

    def release(self, emit: Any) -> None:
        """Hand the answers to the producer, those to one order as one record
        (streams/answers.py): its reserves of several SKUs are mostly decided
        in one batch. Each SKU's outbox still keeps its own answers, so a
        re-send after a crash is the same answers, however they travel."""
        by_order: dict[tuple[str, str], list[str]] = {}
        for records in self.outbox.values():
            for topic, order_id, value in records:
                by_order.setdefault((topic, order_id), []).append(value)
        for (topic, order_id), values in by_order.items():
            emit.send_raw(topic, order_id, answers.pack(order_id, values))


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
    got = await _movements(rt, msg)
    moves = got.known
    if not moves:
        _dead_letter_strays(rt, msg, got)
        return
    sku = got.sku
    source_tp = f"{msg.topic}:{msg.partition}"
    state = batch.state(rt, sku)
    seen = None if batch.replayed(rt, sku, source_tp, msg.offset, event) \
        else first_sight(rt, msg, sku, got.event_id, state.applied(source_tp, msg.offset))
    if seen is not Seen.DUPLICATE:
        # Sent again on a redelivery, as a single record's dead letter is:
        # at least once, since a crash can lose them; never for a duplicate.
        _dead_letter_strays(rt, msg, got)
    if seen is None or seen is Seen.DUPLICATE:
        return
    if seen is Seen.REDELIVERED:
        # Applied before a crash: rewrite the state (batches.py says why) and
        # re-send the availability snapshot, which may have been lost.
        batch.keep(state, event, tuple(sorted({m.node_id for _, m in moves})))
        return
    changed: set[str] = set()
    if len(moves) > 1 and not state.reservations and not state.backorders:
        # Nothing to revoke or fill between two movements: one fold.
        result = apply_movements(state, [m for _, m in moves], source_tp, msg.offset)
        state = result.state
        changed.update(result.changed_nodes)
    else:
        for cause, m in moves:
            state = _apply(rt, batch, state, m, cause, source_tp, msg.offset, changed)
    batch.keep(state, event, tuple(sorted(changed)))
    batch.decided(sku, source_tp, msg.offset)


def _apply(rt: "Runtime", batch: StockBatch, state: SkuState, m: Any, cause: str, source_tp: str, offset: int,
           changed: set[str]) -> SkuState:
    before = state.node(m.node_id).on_hand
    result = apply_movement(state, m, source_tp, offset)
    state = result.state
    changed.update(result.changed_nodes)
    if result.short_nodes:
        revoked = owner.revoke_shortage(state, result.short_nodes, cause=cause)
        state = revoked.state
        changed.update(revoked.changed_nodes)
        _reply(rt, batch, state.sku, revoked.replies)
    if state.backorders and state.node(m.node_id).on_hand > before:
        filled = owner.fill_backorders(state, rt.node_view.nodes, cause, rt.extras["pick"])
        state = filled.state
        changed.update(filled.changed_nodes)
        _reply(rt, batch, state.sku, filled.replies)
    return state


@dataclass(frozen=True, slots=True)
class Unpacked:
    event_id: str  # the idempotency key: the single movement's, or the envelope's
    sku: str
    # (cause, movement) on known nodes, in record order; the cause names the
    # movement in what it causes (an envelope's are <event_id>/<i>).
    known: list[tuple[str, Any]]
    strays: list[InventoryMovement]  # movements on unknown nodes, as single movements
    envelope: bool


NOTHING = Unpacked("", "", [], [], False)


async def _movements(rt: "Runtime", msg: Any) -> Unpacked:
    """The record's movements: one, or an envelope's list. A record that
    breaks the contract is dead-lettered here, whole, and has none."""
    if msg.value and InventoryMovementBatch.looks_like(msg.value):
        env = decode_keyed(rt, msg, InventoryMovementBatch, "sku")
        if env is None:
            return NOTHING
        view = rt.node_view
        if any(view.get(b.node_id) is None for b in env.movements):
            await view.catch_up()
        known, strays = [], []
        for i, b in enumerate(env.movements):
            if view.get(b.node_id) is not None:
                known.append((f"{env.event_id}/{i}", b))
            else:
                strays.append(env.movement(i))
        return Unpacked(env.event_id, env.sku, known, strays, True)
    m = decode_keyed(rt, msg, InventoryMovement, "sku")
    if m is None:
        return NOTHING
    if rt.node_view.get(m.node_id) is None:
        await rt.node_view.catch_up()
        if rt.node_view.get(m.node_id) is None:
            return Unpacked(m.event_id, m.sku, [], [m], False)
    return Unpacked(m.event_id, m.sku, [(m.event_id, m)], [], False)


def _dead_letter_strays(rt: "Runtime", msg: Any, got: Unpacked) -> None:
    """A movement on an unknown node: a single one is dead-lettered as it
    came; one of an envelope as a single movement of its own, so it can be
    fixed and sent again without the lines that were applied."""
    for m in got.strays:
        detail = f"node {m.node_id!r} is not in {rt.topics.nodes}"
        if not got.envelope:
            rt.emit.dead_letter_record(msg, "unknown_node", detail)
            continue
        rt.emit.dead_letter(source_topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key,
                            raw=encode(m), reason="unknown_node", detail=f"movement {m.event_id}: {detail}")


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
    batch.keep(evolve(result.state, offsets=offsets), event, result.changed_nodes)
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
    at_text = datetime_text(at)
    availability, atp_view, send = rt.topics.availability, rt.topics.atp_view, rt.emit.send_raw
    decided: dict[int, Any] = {}  # the input events of this batch that changed availability
    for sku, touched in by_sku.items():
        bind_event(touched[0][1])  # a state not held in the batch is read in its event's partition
        state = batch.state(rt, sku)
        rows = availability_rows(state, [node_id for node_id, _ in touched], nodes)
        key = sku.encode()
        for row, (node_id, event) in zip(rows, touched):
            send(availability, key, encode_availability(row, at_text))
            send(atp_view, atp_key(sku, node_id), str(row["atp"]).encode())
            decided[id(event)] = event
    metrics.AVAILABILITY_EVENTS.inc(len(batch.touched))
    # Once per input event, however many nodes it changed (an envelope, a count).
    for event in decided.values():
        if event.message.topic == rt.topics.movements:
            observe_latency(rt.topics.movements, event.message.timestamp)


def register(rt: "Runtime") -> None:
    rt.extras["pick"] = make_pick(rt)
    handlers = {rt.topics.movements: handle_movement, rt.topics.sku_commands: handle_command}

    @rt.app.agent(raw_topics(rt.app, *handlers), name="stock", concurrency=1)
    async def stock(stream):
        await rt.node_view.ready.wait()
        await run_batches(rt, stream, StockBatch, handlers, flush)
