"""Available-to-Promise arithmetic: pure, no I/O.

State is held per SKU (the partition key of inventory), with one entry per
node. ``on_hand`` is the ledger of what the feeds reported: it is not clamped
at zero, so a POS sale of stock the system never heard of shows up as a
negative on_hand rather than vanishing; ATP is what is clamped.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Iterable, Mapping, NamedTuple

from ..streams.events import InventoryMovement, Node


class NodeStock(NamedTuple):
    # A tuple, not a frozen dataclass like the rest: a SKU's state builds one
    # per node on every load, and a frozen dataclass's __init__ costs a
    # setattr per field (docs/benchmarks.md, session 12).
    on_hand: int = 0
    reserved: int = 0


# [on_hand, reserved] as stored, straight into the tuple (no __init__ call).
_node_stock = tuple.__new__


@dataclass(frozen=True, slots=True)
class Supply:
    node_id: str
    qty: int
    eta: str  # RFC 3339, kept as text so state serialises as plain JSON


@dataclass(frozen=True, slots=True)
class Backorder:
    """A line waiting for this SKU, filled oldest first when stock arrives."""

    created_at: str  # the order's occurred_at, RFC 3339: the queue order
    order_id: str
    line_id: str
    qty: int
    method: str
    pickup_node_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    exclude: tuple[str, ...] = ()

    def to_list(self) -> list:
        return [self.created_at, self.order_id, self.line_id, self.qty, self.method,
                self.pickup_node_id, self.lat, self.lon, list(self.exclude)]

    @classmethod
    def from_list(cls, v: list) -> "Backorder":
        return cls(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], tuple(v[8]))


@dataclass(frozen=True, slots=True)
class SkuState:
    sku: str
    stock: Mapping[str, NodeStock] = field(default_factory=dict)
    supply: Mapping[str, Supply] = field(default_factory=dict)
    # order_id -> node_id -> units held; reserved per node is their sum.
    reservations: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # order_id -> the latest planning attempt seen, so a stale request loses.
    attempts: Mapping[str, int] = field(default_factory=dict)
    backorders: tuple[Backorder, ...] = ()
    # order_id -> node_id -> units an order gave back (shipped, released,
    # shorted) beyond what it held here, because we had revoked them first;
    # settled by the order's ``unrevoke`` (domain/reservations.py).
    owed: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # Highest input offset applied, per source ("topic:partition"). A SKU's
    # records always come from one partition of each topic, so this tells a
    # redelivered record (offset <= it) from a new one, and it travels in the
    # same changelog record as the state it guards.
    offsets: Mapping[str, int] = field(default_factory=dict)

    def node(self, node_id: str) -> NodeStock:
        return self.stock.get(node_id) or NodeStock()

    def applied(self, source: str, offset: int) -> bool:
        last = self.offsets.get(source)
        return last is not None and offset <= last

    def to_dict(self) -> dict:
        return {
            "sku": self.sku,
            "stock": {n: [s[0], s[1]] for n, s in self.stock.items()},  # [on_hand, reserved]
            "supply": {k: [s.node_id, s.qty, s.eta] for k, s in self.supply.items()},
            "offsets": dict(self.offsets),
            "res": {o: dict(r) for o, r in self.reservations.items()},
            "att": dict(self.attempts),
            "bo": [b.to_list() for b in self.backorders],
            **({"owed": {o: dict(n) for o, n in self.owed.items()}} if self.owed else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "SkuState":
        return cls(
            sku=d["sku"],
            stock={n: _node_stock(NodeStock, v) for n, v in d.get("stock", {}).items()},
            supply={k: Supply(v[0], v[1], v[2]) for k, v in d.get("supply", {}).items()},
            offsets=dict(d.get("offsets", {})),
            reservations={o: dict(r) for o, r in d.get("res", {}).items()},
            attempts=dict(d.get("att", {})),
            backorders=tuple(Backorder.from_list(b) for b in d.get("bo", ())),
            owed={o: dict(n) for o, n in d.get("owed", {}).items()},
        )


@dataclass(frozen=True, slots=True)
class MovementResult:
    state: SkuState
    # Nodes whose on_hand or reserved changed: they get an availability event.
    changed_nodes: tuple[str, ...]
    # Nodes where on_hand fell below reserved: reservations there no longer fit.
    short_nodes: tuple[str, ...]


def atp(stock: NodeStock, node: Node | None) -> int:
    """ATP at one node: on_hand - reserved - safety_stock, never below 0.

    An unknown or inactive node promises nothing.
    """
    if node is None or not node.active:
        return 0
    return max(0, stock.on_hand - stock.reserved - node.safety_stock)


def network_atp(state: SkuState, nodes: Mapping[str, Node]) -> int:
    # ``atp`` summed, written out: it runs over every node of a SKU for each
    # SKU a batch changes, and a call per node was nearly a tenth of the ingest
    # profile (docs/benchmarks.md, session 19).
    total = 0
    get = nodes.get
    for node_id, (on_hand, reserved) in state.stock.items():
        node = get(node_id)
        if node is not None and node.active:
            free = on_hand - reserved - node.safety_stock
            if free > 0:
                total += free
    return total


def expected_supply(
    state: SkuState, until: datetime | None = None
) -> list[tuple[str, str, int, str]]:
    """Open supply as (supply_id, node_id, qty, eta), soonest first.

    With ``until``, only supply due on or before that moment.
    """
    rows = [
        (sid, s.node_id, s.qty, s.eta)
        for sid, s in state.supply.items()
        if until is None or datetime.fromisoformat(s.eta) <= until
    ]
    return sorted(rows, key=lambda r: (r[3], r[0]))


def future_atp(
    state: SkuState,
    nodes: Mapping[str, Node],
    at: datetime,
    promised: Mapping[str, int] | None = None,
) -> int:
    """Network ATP at ``at``: today's ATP plus supply due by then, less what
    backorders already hold against that supply (``promised`` by supply_id)."""
    promised = promised or {}
    future = 0
    for sid, node_id, qty, _eta in expected_supply(state, at):
        node = nodes.get(node_id)
        if node is not None and node.active:
            future += max(0, qty - promised.get(sid, 0))
    return network_atp(state, nodes) + future


def apply_movement(
    state: SkuState, m: InventoryMovement, source: str, offset: int
) -> MovementResult:
    """The state after one movement, and which nodes it touched."""
    stock = dict(state.stock)
    supply = dict(state.supply)
    before, after = _move(stock, supply, m)
    changed = (m.node_id,) if after != before else ()
    short = (m.node_id,) if after.on_hand < after.reserved else ()
    return MovementResult(evolve(state, stock=stock, supply=supply, offsets=advance(state.offsets, source, offset)),
                          changed, short)


def apply_movements(
    state: SkuState, moves: Iterable[InventoryMovement], source: str, offset: int
) -> MovementResult:
    """Several movements of one record (an envelope) in order: the state
    ``apply_movement`` one after the other leaves, copied once instead of
    once per movement. Only for a state without reservations or backorders,
    where nothing happens between two movements (no holding to revoke, no
    line to fill); short lists the nodes below zero at the end."""
    if state.reservations or state.backorders:
        raise ValueError("apply_movements: a state with reservations or backorders takes one movement at a time")
    stock = dict(state.stock)
    supply = dict(state.supply)
    changed: dict[str, None] = {}
    for m in moves:
        before, after = _move(stock, supply, m)
        if after != before:
            changed[m.node_id] = None
    short = tuple(n for n in changed if stock[n].on_hand < stock[n].reserved)
    return MovementResult(evolve(state, stock=stock, supply=supply, offsets=advance(state.offsets, source, offset)),
                          tuple(changed), short)


_FIELDS = SkuState.__slots__
_new = object.__new__
_set = object.__setattr__


def evolve(state: SkuState, **changes) -> SkuState:
    """``dataclasses.replace(state, **changes)`` at half its cost: it runs for
    every movement and reserve, and ``replace`` walks the dataclass's field
    objects and calls ``__init__`` (docs/benchmarks.md, session 19). SkuState
    has no ``__post_init__`` to skip."""
    new = _new(SkuState)
    for name in _FIELDS:
        _set(new, name, changes.pop(name) if name in changes else getattr(state, name))
    if changes:
        raise TypeError(f"SkuState has no field {', '.join(sorted(changes))}")
    return new


def _move(stock: dict[str, NodeStock], supply: dict[str, Supply], m: InventoryMovement) -> tuple[NodeStock, NodeStock]:
    """Apply one movement to the (copied) stock and supply maps in place."""
    before = stock.get(m.node_id) or NodeStock()
    on_hand = before.on_hand
    t, q = m.type, m.qty or 0

    if t in ("receipt", "transfer_in", "adjustment"):
        on_hand += q
    elif t in ("sale", "damage", "transfer_out"):
        on_hand -= q
    elif t == "count":
        on_hand = q
    elif t == "expected":
        supply[m.supply_id] = Supply(m.node_id, q, m.eta.isoformat())
    elif t == "expected_cancel":
        supply.pop(m.supply_id, None)

    if t == "receipt" and m.supply_id and m.supply_id in supply:
        arrived = supply[m.supply_id]
        left = arrived.qty - q
        if left > 0:
            supply[m.supply_id] = replace(arrived, qty=left)
        else:
            del supply[m.supply_id]

    after = NodeStock(on_hand, before.reserved)
    if after != before or m.node_id in stock:
        stock[m.node_id] = after
    return before, after


def advance(offsets: Mapping[str, int], source: str, offset: int) -> dict[str, int]:
    """The applied-offsets map after applying ``offset`` of ``source``: it only
    moves forward, since a record re-run on redelivery (a reserve) must not
    make later, already applied records look new (found by tests/chaos)."""
    out = dict(offsets)
    out[source] = max(offset, out.get(source, -1))
    return out


def availability_rows(
    state: SkuState, node_ids: Iterable[str], nodes: Mapping[str, Node]
) -> list[dict]:
    """Per-node availability figures of the contract's Availability event."""
    net = network_atp(state, nodes)
    rows = []
    for node_id in node_ids:
        s = state.node(node_id)
        node = nodes.get(node_id)
        rows.append(
            {
                "sku": state.sku,
                "node_id": node_id,
                "on_hand": s.on_hand,
                "reserved": s.reserved,
                "safety_stock": node.safety_stock if node else 0,
                "atp": atp(s, node),
                "network_atp": net,
            }
        )
    return rows
