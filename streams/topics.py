"""Every topic declared once, with its key and value types (DESIGN.md section 3).

Agents, connectors, tests and the admin step that creates topics all take
their names and types from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from . import events as ev


@dataclass(frozen=True)
class TopicSpec:
    suffix: str
    key: str  # the event field the record key carries
    value: type[BaseModel] | type[dict]  # the topic's main value form
    direction: Literal["in", "out", "internal"]
    compacted: bool = False
    # Internal topics carry stockflow's own JSON dicts, not contract events.
    internal: bool = False
    # Other value forms accepted on this topic, beside ``value``; each carries
    # ``key`` too, and readers tell the forms apart by their fields.
    also: tuple[type[BaseModel], ...] = ()

    @property
    def values(self) -> tuple[type[BaseModel] | type[dict], ...]:
        """Every value form of the topic, the main one first."""
        return (self.value, *self.also)


SPECS: dict[str, TopicSpec] = {
    "nodes": TopicSpec("nodes", "node_id", ev.Node, "in", compacted=True),
    # single movements, or an envelope of many movements of one SKU
    "movements": TopicSpec("inventory.movements", "sku", ev.InventoryMovement, "in",
                           also=(ev.InventoryMovementBatch,)),
    "order_commands": TopicSpec("orders.commands", "order_id", ev.OrderCommand, "in"),
    "fulfillment_updates": TopicSpec("fulfillment.updates", "order_id", ev.FulfillmentUpdate, "in"),
    "allocations": TopicSpec("allocations", "order_id", ev.Allocation, "out"),
    "fulfillment_requests": TopicSpec("fulfillment.requests", "node_id", ev.FulfillmentRequest, "out"),
    "notifications": TopicSpec("notifications", "order_id", ev.Notification, "out"),
    "availability": TopicSpec("availability", "sku", ev.Availability, "out"),
    "order_status": TopicSpec("orders.status", "order_id", ev.OrderStatus, "out"),
    "deadletter": TopicSpec("deadletter", "key", ev.DeadLetter, "out"),
    # stockflow's own, free to change (DESIGN.md section 3):
    # reservation commands to the owner of a SKU's state
    "sku_commands": TopicSpec("internal.sku-commands", "sku", dict, "internal", internal=True),
    # owners' answers back to the owner of the order
    "order_events": TopicSpec("internal.order-events", "order_id", dict, "internal", internal=True),
    # ATP per "sku|node", the replicated view orders are planned on
    "atp_view": TopicSpec("internal.atp", "sku|node", dict, "internal", compacted=True, internal=True),
}


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix (``stockflow`` in production; tests use
    a fresh prefix each so they never see each other's records)."""

    prefix: str = "stockflow"

    def name(self, logical: str) -> str:
        return f"{self.prefix}.{SPECS[logical].suffix}"

    @property
    def nodes(self) -> str:
        return self.name("nodes")

    @property
    def movements(self) -> str:
        return self.name("movements")

    @property
    def order_commands(self) -> str:
        return self.name("order_commands")

    @property
    def fulfillment_updates(self) -> str:
        return self.name("fulfillment_updates")

    @property
    def allocations(self) -> str:
        return self.name("allocations")

    @property
    def fulfillment_requests(self) -> str:
        return self.name("fulfillment_requests")

    @property
    def notifications(self) -> str:
        return self.name("notifications")

    @property
    def availability(self) -> str:
        return self.name("availability")

    @property
    def order_status(self) -> str:
        return self.name("order_status")

    @property
    def deadletter(self) -> str:
        return self.name("deadletter")

    @property
    def sku_commands(self) -> str:
        return self.name("sku_commands")

    @property
    def order_events(self) -> str:
        return self.name("order_events")

    @property
    def atp_view(self) -> str:
        return self.name("atp_view")

    def all(self) -> dict[str, TopicSpec]:
        return {self.name(k): spec for k, spec in SPECS.items()}
