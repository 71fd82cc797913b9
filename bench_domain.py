"""The pure work of an order, without Kafka, Faust or the tables (an extra
figure of ``stockflow bench``, not one of the issue's).

The same orders the bench's ``orders_per_s`` phase sends, on stock folded
from the same movements, go through the functions the worker calls for
them, in the worker's order: the command's decode, ``on_create`` (the
plan), each SKU owner's ``reserve`` with its availability rows and its
state document, the answers packed and read back, ``on_reserved``, every
output written as the worker writes it, and the order's document. What it
leaves out is what the worker adds around that work: reading and writing
records, the idempotency table, the batches' bookkeeping, the views.

So the figure is a floor for stockflow's own code: ``orders_per_s`` can
not pass 1,000,000 / ``orders_domain_us`` on one core however cheap the
rest becomes (docs/benchmarks.md, session 23).
"""
from __future__ import annotations

import gc
import time
from datetime import datetime, timezone
from typing import Iterable, Mapping

import orjson

from .agents.orders import OUTPUT_MODELS, Later
from .domain import orders as flow
from .domain import reservations as owner
from .domain.atp import SkuState, apply_movement, availability_rows
from .streams import answers
from .streams import events as ev
from .streams.codec import datetime_text, decode, encode_availability, encode_output
from .tables.writes import encode_value

PARTS = ("order_side", "owner_side", "records")


class _Clock:
    """Time per part, read around each call (perf_counter: wall time of a
    single thread with nothing else to wait on)."""

    def __init__(self) -> None:
        self.spent = dict.fromkeys(PARTS, 0.0)
        self._t = time.perf_counter()

    def lap(self, part: str) -> None:
        t = time.perf_counter()
        self.spent[part] += t - self._t
        self._t = t


def stock_from(movements: Iterable[bytes]) -> dict[str, SkuState]:
    """SKU states folded from the bench's movement records."""
    states: dict[str, SkuState] = {}
    for offset, raw in enumerate(movements):
        m = decode(raw, ev.InventoryMovement, 1 << 20)
        state = states.get(m.sku) or SkuState(m.sku)
        states[m.sku] = apply_movement(state, m, "movements:0", offset).state
    return states


def measure(nodes: Mapping[str, ev.Node], stock: dict[str, SkuState], orders: list[bytes],
            radius: float = 50.0, warmup: int = 200) -> dict:
    """Run every order through the pure path; microseconds an order, in all
    and per part, over the orders after ``warmup``."""
    if len(orders) <= warmup:
        raise ValueError(f"measure: {len(orders)} orders, need more than the {warmup} of the warm-up")
    stock = dict(stock)
    view: dict[str, dict[str, int]] = {}  # sku -> node -> ATP, as the worker's ATP view
    for sku, state in stock.items():
        view[sku] = owner.atp_by_node(state, nodes)
    clock = _Clock()
    statuses: dict[str, int] = {}
    gc_was = gc.isenabled()
    gc.disable()  # the worker collects rarely (collector.py); a full collection here would be noise
    try:
        for i, raw in enumerate(orders):
            if i == warmup:
                clock = _Clock()
                t0 = time.perf_counter()
            status = _one(raw, nodes, stock, view, radius, clock)
            statuses[status] = statuses.get(status, 0) + 1
        elapsed = time.perf_counter() - t0
    finally:
        if gc_was:
            gc.enable()
    n = len(orders) - warmup
    return {"orders_domain_us": 1e6 * elapsed / n,
            "orders_domain_parts_us": {p: 1e6 * s / n for p, s in clock.spent.items()},
            "orders_domain_orders": n,
            "orders_domain_statuses": statuses}  # every order's, the warm-up's too


def _one(raw: bytes, nodes: Mapping[str, ev.Node], stock: dict[str, SkuState], view: dict[str, dict[str, int]],
         radius: float, clock: _Clock) -> str:
    """One order from its create to its decision; its status then."""
    at = datetime.now(timezone.utc)
    clock.lap("records")
    cmd = decode(raw, ev.OrderCommand, 1 << 20)
    clock.lap("records")
    skus = {ln.sku for ln in cmd.lines}
    step = flow.on_create(None, cmd, {(s, n): q for s in skus for n, q in view.get(s, {}).items()}, nodes,
                          radius, at, {})
    state = step.state
    clock.lap("order_side")
    _write(step)
    commands = [orjson.dumps(c) for c in step.commands]
    clock.lap("records")
    replies = []
    for value in commands:
        c = orjson.loads(value)
        clock.lap("records")
        result = owner.reserve(stock[c["sku"]], c, nodes)
        stock[c["sku"]] = result.state
        rows = availability_rows(result.state, result.changed_nodes, nodes)
        clock.lap("owner_side")
        text = datetime_text(at)
        for row in rows:
            encode_availability(row, text)
            str(row["atp"]).encode()
        replies.extend(orjson.dumps(r).decode() for r in result.replies)
        encode_value(result.state.to_dict())
        clock.lap("records")
    order_id, got = answers.unpack(answers.pack(cmd.order_id, replies) if len(replies) > 1 else replies[0].encode())
    clock.lap("records")
    for reply in got:
        view.setdefault(reply["sku"], {}).update(reply["atp"])
        # built only for a re-plan, as the worker's (agents/orders.py)
        step = flow.on_reserved(state, reply, Later(lambda: {(s, n): q for s in skus for n, q in view.get(s, {}).items()}),
                                nodes, radius, at, {})
        state = step.state
        clock.lap("order_side")
        _write(step)
        clock.lap("records")
    encode_value(state)
    clock.lap("records")
    return state["status"]


def _write(step: flow.Step) -> None:
    for logical, _key, body in step.outputs:
        encode_output(OUTPUT_MODELS[logical], body)


def text(figures: dict) -> str:
    parts = figures["orders_domain_parts_us"]
    return (f"{figures['orders_domain_us']:,.0f} us an order (the order side {parts['order_side']:,.0f}, "
            f"the SKU owners {parts['owner_side']:,.0f}, records and documents {parts['records']:,.0f})")
