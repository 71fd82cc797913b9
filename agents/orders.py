"""The owner of each order: commands from channels, answers from SKU owners.

Both topics are keyed by order_id and co-partitioned, so one worker decides
everything about an order, one record at a time. Thin: decode, call the
pure functions of domain/orders.py, write the state, the commands to SKU
owners and the output events.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from .. import metrics
from ..domain import lifecycle
from ..domain import orders as flow
from ..domain.atp import advance
from ..domain.idempotency import Seen
from ..streams import answers
from ..streams import events as ev
from ..streams.codec import encode_output
from ..streams.exceptions import DecodeError
from ..tables.context import bind_event
from .batches import decode_keyed, first_sight, raw_topics, run_batches
from .emit import now, observe_latency
from .outbox import Outbox

if TYPE_CHECKING:
    from ..app import Runtime

OUTPUT_MODELS = {
    "allocations": ev.Allocation,
    "fulfillment_requests": ev.FulfillmentRequest,
    "notifications": ev.Notification,
    "order_status": ev.OrderStatus,
}


class OrderBatch(Outbox):
    """One batch of the orders agent: new order states and their outbox
    (agents/outbox.py), written at the batch's end."""

    def state(self, rt: "Runtime", order_id: str) -> dict | None:
        held = self.states.get(order_id)
        if held:
            return held[0]
        state = rt.orders.get(order_id)
        self.remember_stored(rt, order_id, (state or {}).get("outbox"))
        return state


def _applied(state: dict | None, source: str, offset: int) -> bool:
    if state is None:
        return False
    last = state.get("offsets", {}).get(source)
    return last is not None and offset <= last


def _rewrite_on_redelivery(batch: OrderBatch, seen: Seen, state: dict | None, event: Any) -> None:
    """A record applied before a crash writes its order's state again, so a
    changelog behind the local store catches up (agents/batches.py)."""
    if seen is Seen.REDELIVERED and state is not None:
        batch.states[state["order_id"]] = (state, event)


def write(rt: "Runtime", step: flow.Step, event: Any, batch: OrderBatch, source: str,
          current: dict | None) -> None:
    """Apply a step: a dead letter, or the new state, commands and outputs,
    all into the batch's outbox when the order exists."""
    msg = event.message
    state = step.state
    if step.dead_letter:
        if current is None:  # no order to carry it: nothing else to contradict
            rt.emit.dead_letter_record(msg, *step.dead_letter)
            return
        # A refusal is a decision too: the order remembers it, so a re-run
        # repeats it rather than accept what it refused.
        state = dict(current)
        batch.send(state["order_id"], *rt.emit.dead_letter_record(msg, *step.dead_letter, queue=False))
    if state is None:
        return
    order_id = state["order_id"]
    state["offsets"] = advance(state.get("offsets", {}), source, msg.offset)
    batch.states[order_id] = (state, event)
    batch.decided(order_id, source, msg.offset)
    for cmd in step.commands:
        batch.send(order_id, rt.topics.sku_commands, cmd["sku"], orjson.dumps(cmd))
    for logical, key, body in step.outputs:
        model = OUTPUT_MODELS[logical]
        batch.send(order_id, rt.topics.name(logical), key, encode_output(model, body))
        if logical == "allocations":
            metrics.ALLOCATIONS.labels(body["status"]).inc()
            if len(body["shipments"]) > 1:
                metrics.SPLIT_SHIPMENTS.inc()
            if body["caused_by"] == state.get("event_id"):
                metrics.BACKORDERS.inc(len(body["backorders"]))
                observe_latency(rt.topics.order_commands, state.get("received_ts"))


async def handle_command(rt: "Runtime", event: Any, batch: OrderBatch) -> None:
    msg = event.message
    cmd = decode_keyed(rt, msg, ev.OrderCommand, "order_id")
    if cmd is None:
        return
    source = f"{msg.topic}:{msg.partition}"
    state = batch.state(rt, cmd.order_id)
    if batch.replayed(rt, cmd.order_id, source, msg.offset, event):
        return
    seen = first_sight(rt, msg, cmd.order_id, cmd.event_id, _applied(state, source, msg.offset))
    if seen is not Seen.NEW:
        _rewrite_on_redelivery(batch, seen, state, event)
        return
    at = now()
    nodes = rt.node_view.nodes
    if cmd.type == "create":
        if cmd.delivery.pickup_node_id and cmd.delivery.pickup_node_id not in nodes:
            await rt.node_view.catch_up()
        skus = {ln.sku for ln in cmd.lines}
        step = flow.on_create(state, cmd, rt.atp_view.for_skus(skus), nodes, rt.settings.same_day_radius_km, at,
                              rt.capacity_view.left(nodes))
        if step.duplicate:
            metrics.DUPLICATES_SKIPPED.labels(msg.topic).inc()
            return
        if step.dead_letter is None:
            metrics.ORDERS_RECEIVED.inc()
            step.state["received_ts"] = msg.timestamp
    elif state is None:
        step = flow.Step(None, dead_letter=("unknown_order", f"{cmd.type} for unknown order {cmd.order_id!r}"))
    elif cmd.type in ("cancel", "cancel_line"):
        step = lifecycle.on_cancel(state, cmd, at)
    elif cmd.type == "change_address":
        step = lifecycle.on_change_address(state, cmd, at)
    else:
        step = lifecycle.on_return_request(state, cmd, at)
    write(rt, step, event, batch, source, state)


async def handle_update(rt: "Runtime", event: Any, batch: OrderBatch) -> None:
    msg = event.message
    upd = decode_keyed(rt, msg, ev.FulfillmentUpdate, "order_id")
    if upd is None:
        return
    source = f"{msg.topic}:{msg.partition}"
    state = batch.state(rt, upd.order_id)
    if state is None:
        rt.emit.dead_letter_record(msg, "unknown_order", f"{upd.type} for unknown order {upd.order_id!r}")
        return
    if batch.replayed(rt, upd.order_id, source, msg.offset, event):
        return
    seen = first_sight(rt, msg, upd.order_id, upd.event_id, _applied(state, source, msg.offset))
    if seen is not Seen.NEW:
        _rewrite_on_redelivery(batch, seen, state, event)
        return
    write(rt, lifecycle.on_fulfillment(state, upd, rt.node_view.nodes, now()), event, batch, source, state)


async def handle_reply(rt: "Runtime", event: Any, batch: OrderBatch) -> None:
    msg = event.message
    try:
        order_id, replies = answers.unpack(msg.value)
    except DecodeError as exc:
        rt.emit.dead_letter_record(msg, exc.reason, exc.detail)
        return
    source = f"{msg.topic}:{msg.partition}"
    state = batch.state(rt, order_id)
    if state is None:
        kinds = ", ".join(r["kind"] for r in replies)
        rt.emit.dead_letter_record(msg, "unknown_order", f"{kinds} for unknown order {order_id!r}")
        return
    if batch.replayed(rt, order_id, source, msg.offset, event):
        return
    # No offset check here: replies carry their own ids and the domain
    # functions ignore one they have applied (a reply not pending any more,
    # a remembered fill or revocation). An offset check would drop a reply
    # handed over past a gap in a rebalance (idempotency.classify says why).
    # ``write`` stores the state even for a reply ignored that way, which is
    # the rewrite a redelivery needs (agents/batches.py).
    for reply in replies:  # one record may carry several (streams/answers.py)
        write(rt, _on_reply(rt, state, reply), event, batch, source, state)
        state = batch.state(rt, order_id)


def _on_reply(rt: "Runtime", state: dict, reply: dict) -> flow.Step:
    at = now()
    nodes = rt.node_view.nodes
    kind = reply["kind"]
    if kind == "reserved":
        rt.atp_view.update(reply["sku"], reply.get("atp", {}))
        view = Later(lambda: rt.atp_view.for_skus({ln["sku"] for ln in state["lines"].values()}))
        step = flow.on_reserved(state, reply, view, nodes, rt.settings.same_day_radius_km, at,
                                Later(lambda: rt.capacity_view.left(nodes)))
        if step.commands and step.state["attempt"] > state["attempt"]:
            metrics.RESERVATION_RETRIES.inc()
    elif kind == "backorder_filled":
        step = flow.on_backorder_filled(state, reply, nodes, at)
    else:  # revoked: answers.unpack lets no other kind through
        step = flow.on_revoked(state, reply, nodes, at)
    if step.duplicate:
        metrics.DUPLICATES_SKIPPED.labels(rt.topics.order_events).inc()
    return step


class Later(Mapping):
    """A mapping made on its first read. An answer is planned on (the ATP
    view, the nodes' capacity left) only when it ends a round that fell
    short; most answers just tick off a SKU, and building both for each
    was about 4% of a busy worker (docs/benchmarks.md, session 22)."""

    __slots__ = ("_make", "_made")

    def __init__(self, make: Callable[[], Mapping]) -> None:
        self._make = make
        self._made: Mapping | None = None

    def _mapping(self) -> Mapping:
        if self._made is None:
            self._made = self._make()
        return self._made

    def __getitem__(self, key: Any) -> Any:
        return self._mapping()[key]

    def __iter__(self) -> Iterator:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def get(self, key: Any, default: Any = None) -> Any:
        return self._mapping().get(key, default)


def flush(rt: "Runtime", batch: OrderBatch) -> None:
    for order_id, (state, event) in batch.states.items():
        box = batch.box_to_store(order_id)
        if box:
            state["outbox"] = box
        else:
            state.pop("outbox", None)
        bind_event(event)
        rt.orders.put(order_id, state)


def register(rt: "Runtime") -> None:
    handlers = {
        rt.topics.order_commands: handle_command,
        rt.topics.fulfillment_updates: handle_update,
        rt.topics.order_events: handle_reply,
    }

    @rt.app.agent(raw_topics(rt.app, *handlers), name="orders", concurrency=1)
    async def orders(stream):
        await rt.node_view.ready.wait()
        await rt.atp_view.ready.wait()
        await rt.capacity_view.ready.wait()
        await run_batches(rt, stream, OrderBatch, handlers, flush)
