"""Event models of the wire contract (DESIGN.md section 4).

Every model is frozen and ignores unknown fields (the contract grows only by
optional fields). Input models are validated strictly, so a quantity sent as
``"5"`` or ``true`` is a contract breach that goes to the dead-letter topic
rather than a silent coercion.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# Identifiers are short printable strings; a bound keeps hostile input cheap.
Id = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=False)]
# Quantities and amounts are bounded so that everything derived from them
# (ATP sums over nodes, refund = unit_price x qty, costs) stays a finite
# number a 64-bit consumer can read: pydantic accepts arbitrarily large JSON
# integers, which orjson (our HTTP encoder) cannot write and a Java long
# cannot hold, and ``1e999`` parses as an infinite float. The bounds also
# reject inf and NaN. No store, DC or order holds a billion units.
MAX_QTY = 1_000_000_000
MAX_AMOUNT = 1e9  # prices and costs, in the channel's currency
PositiveQty = Annotated[int, Field(gt=0, le=MAX_QTY)]


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class InputEvent(Event):
    event_id: Id
    occurred_at: datetime


# --------------------------------------------------------------------- nodes
NodeKind = Literal["dc", "store", "dropship", "3pl"]
Service = Literal["ship", "pickup", "curbside", "same_day"]


class Node(Event):
    node_id: Id
    kind: NodeKind
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    services: tuple[Service, ...] = ()
    daily_capacity: int | None = Field(default=None, ge=0, le=MAX_QTY)
    safety_stock: int = Field(default=0, ge=0, le=MAX_QTY)
    cost_per_order: float = Field(default=0.0, ge=0, le=MAX_AMOUNT)
    cost_per_km: float = Field(default=0.0, ge=0, le=MAX_AMOUNT)
    active: bool = True


# ---------------------------------------------------------- inventory movements
MovementType = Literal[
    "receipt",
    "sale",
    "damage",
    "transfer_out",
    "transfer_in",
    "adjustment",
    "count",
    "expected",
    "expected_cancel",
]
POSITIVE_QTY_TYPES = frozenset(
    {"receipt", "sale", "damage", "transfer_out", "transfer_in", "expected"}
)


class InventoryMovement(InputEvent):
    sku: Id
    node_id: Id
    type: MovementType
    qty: int | None = Field(default=None, ge=-MAX_QTY, le=MAX_QTY)
    supply_id: Id | None = None
    eta: datetime | None = None
    reason: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _qty_fits_type(self) -> "InventoryMovement":
        return _check_qty(self)


def _check_qty(m):
    t, q = m.type, m.qty
    if t == "expected_cancel":
        if m.supply_id is None:
            raise ValueError("expected_cancel needs supply_id")
        return m
    if q is None:
        raise ValueError(f"{t} needs qty")
    if t in POSITIVE_QTY_TYPES and q <= 0:
        raise ValueError(f"{t} needs qty > 0, got {q}")
    if t == "count" and q < 0:
        raise ValueError(f"count needs qty >= 0, got {q}")
    if t == "adjustment" and q == 0:
        raise ValueError("adjustment needs a non-zero qty")
    if t == "expected" and (m.supply_id is None or m.eta is None):
        raise ValueError("expected needs supply_id and eta")
    return m


# One record may carry many movements of one SKU (a POS upload, a WMS
# snapshot of a SKU over its nodes): the optional envelope form beside single
# movements on the same topic, told apart by its ``movements`` list. Per
# record costs (fetch, delivery, idempotency, the state write) are then paid
# once for the whole list (docs/benchmarks.md).
MAX_BATCH_MOVEMENTS = 1000


class BatchedMovement(Event):
    """One movement inside an envelope: the envelope gives its sku,
    event_id (the idempotency key of the whole list) and occurred_at."""

    node_id: Id
    type: MovementType
    qty: int | None = Field(default=None, ge=-MAX_QTY, le=MAX_QTY)
    supply_id: Id | None = None
    eta: datetime | None = None
    reason: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _qty_fits_type(self) -> "BatchedMovement":
        return _check_qty(self)


class InventoryMovementBatch(InputEvent):
    sku: Id
    movements: tuple[BatchedMovement, ...] = Field(min_length=1, max_length=MAX_BATCH_MOVEMENTS)

    def movement(self, i: int) -> InventoryMovement:
        """The i-th movement as a single one; its event_id ``<event_id>/<i>``
        names it in causes and dead letters (not an idempotency key: the
        envelope's event_id is)."""
        b = self.movements[i]
        return InventoryMovement.model_construct(
            event_id=f"{self.event_id}/{i}", occurred_at=self.occurred_at, sku=self.sku, node_id=b.node_id,
            type=b.type, qty=b.qty, supply_id=b.supply_id, eta=b.eta, reason=b.reason)

    @staticmethod
    def looks_like(raw: bytes) -> bool:
        """Whether a movements record is an envelope. Cheap on single movements
        (the key never appears in them), exact on envelopes: a quoted
        ``"movements"`` that is a string value, not the key, parses as a dict
        without a list under that key."""
        if b'"movements"' not in raw:
            return False
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return False
        return isinstance(value, dict) and "movements" in value


# ------------------------------------------------------------ order commands
Channel = Literal["web", "app", "marketplace", "store", "edi", "social"]
DeliveryMethod = Literal["ship", "pickup", "curbside", "same_day"]


class Customer(Event):
    customer_id: Id
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)


class OrderLine(Event):
    line_id: Id
    sku: Id | None = None  # required on create; a return_request names line_id and qty only
    qty: PositiveQty
    unit_price: float | None = Field(default=None, ge=0, le=MAX_AMOUNT)


class Address(Event):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    postal_code: str | None = Field(default=None, max_length=40)
    country: str | None = Field(default=None, max_length=60)


class Delivery(Event):
    method: DeliveryMethod
    pickup_node_id: Id | None = None
    address: Address | None = None

    @model_validator(mode="after")
    def _method_needs(self) -> "Delivery":
        if self.method in ("pickup", "curbside") and not self.pickup_node_id:
            raise ValueError(f"{self.method} needs pickup_node_id")
        if self.method in ("ship", "same_day") and self.address is None:
            raise ValueError(f"{self.method} needs address")
        return self


class LineRef(Event):
    line_id: Id
    qty: PositiveQty | None = None


class ReturnLine(Event):
    line_id: Id
    qty: PositiveQty


OrderCommandType = Literal["create", "cancel", "cancel_line", "change_address", "return_request"]

# How big a create may be: the characters of its ids plus a share a line
# (``create_size``). An order's document, with the records its batch
# decided kept beside it (agents/outbox.py), is one changelog record; with
# every line shipped from its own node it takes about 20 bytes a unit of
# this size, so a larger create could make a record over Kafka's 1 MB
# limit, whose write stops the worker, again on every restart. That is
# about 250 lines of short ids, 70 of 200-character ids
# (tests/unit/test_order_size.py builds the largest allowed and measures).
MAX_CREATE_SIZE = 36 * 1024
LINE_SHARE = 140


def create_size(order_id: str, lines: tuple["OrderLine", ...]) -> int:
    return len(order_id) + sum(len(ln.line_id) + len(ln.sku or "") + LINE_SHARE for ln in lines)


class OrderCommand(InputEvent):
    type: OrderCommandType
    order_id: Id
    channel: Channel | None = None
    customer: Customer | None = None
    lines: tuple[OrderLine, ...] | None = Field(default=None, max_length=500)
    delivery: Delivery | None = None
    allow_partial: bool = True
    allow_backorder: bool = True
    line_id: Id | None = None
    qty: PositiveQty | None = None
    address: Address | None = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> "OrderCommand":
        t = self.type
        if t == "create":
            missing = [
                f
                for f in ("channel", "customer", "lines", "delivery")
                if getattr(self, f) is None
            ]
            if missing:
                raise ValueError(f"create needs {', '.join(missing)}")
            if not self.lines:
                raise ValueError("create needs at least one line")
            if any(ln.sku is None for ln in self.lines):
                raise ValueError("create lines need sku")
            ids = [ln.line_id for ln in self.lines]
            if len(set(ids)) != len(ids):
                raise ValueError("line_id values must be unique")
            size = create_size(self.order_id, self.lines)
            if size > MAX_CREATE_SIZE:
                raise ValueError(f"create too large to keep: its ids and lines come to {size} units, over "
                                 f"{MAX_CREATE_SIZE} (fewer or shorter lines; split the order)")
        elif t == "cancel_line" and self.line_id is None:
            raise ValueError("cancel_line needs line_id")
        elif t == "change_address" and self.address is None:
            raise ValueError("change_address needs address")
        elif t == "return_request":
            if not self.lines:
                raise ValueError("return_request needs lines")
        return self


class ReturnRequest(Event):
    """The ``lines`` of a return_request: line_id and qty only."""

    lines: tuple[ReturnLine, ...]


# -------------------------------------------------------- fulfilment updates
FulfillmentType = Literal[
    "picked",
    "packed",
    "shipped",
    "delivered",
    "ready_for_pickup",
    "picked_up",
    "short",
    "rejected",
    "return_received",
]


class ShipmentLine(Event):
    line_id: Id
    sku: Id
    qty: PositiveQty


class FulfillmentUpdate(InputEvent):
    order_id: Id
    shipment_id: Id
    node_id: Id
    type: FulfillmentType
    lines: tuple[ShipmentLine, ...] = Field(default=(), max_length=500)
    carrier: str | None = Field(default=None, max_length=200)
    tracking_number: str | None = Field(default=None, max_length=200)
    condition: Literal["resellable", "damaged"] | None = None


# ------------------------------------------------------------------ outputs
class Out(Event):
    # Outputs are built by stockflow itself: no strict mode needed, and
    # lax mode lets pure functions pass plain dicts for nested parts.
    model_config = ConfigDict(frozen=True, extra="ignore", strict=False)


class Shipment(Out):
    shipment_id: str
    node_id: str
    method: DeliveryMethod
    lines: tuple[ShipmentLine, ...]
    distance_km: float
    cost: float


class Backorder(Out):
    line_id: str
    sku: str
    qty: int
    expected_date: datetime | None = None


class RejectedLine(Out):
    line_id: str
    sku: str
    qty: int
    reason: str


class Allocation(Out):
    decision_id: str
    order_id: str
    occurred_at: datetime
    caused_by: str
    status: Literal["allocated", "partial", "backordered", "rejected"]
    shipments: tuple[Shipment, ...] = ()
    backorders: tuple[Backorder, ...] = ()
    rejected: tuple[RejectedLine, ...] = ()


class FulfillmentRequest(Out):
    request_id: str
    node_id: str
    order_id: str
    shipment_id: str
    method: DeliveryMethod
    lines: tuple[ShipmentLine, ...]
    address: Address | None = None
    pickup_node_id: str | None = None
    action: Literal["release", "cancel"]


NotificationType = Literal[
    "order_confirmed",
    "backordered",
    "shipped",
    "ready_for_pickup",
    "delivered",
    "cancelled",
    "partially_cancelled",
    "return_received",
    "refund_issued",
    "delayed",
]


class Notification(Out):
    notification_id: str
    order_id: str
    type: NotificationType
    customer: Customer
    channel: Literal["email", "sms"]
    data: dict = Field(default_factory=dict)


class Availability(Out):
    sku: str
    node_id: str
    on_hand: int
    reserved: int
    safety_stock: int
    atp: int
    network_atp: int
    occurred_at: datetime


LineStatus = Literal[
    "created",
    "allocated",
    "partial",
    "backordered",
    "released",
    "shipped",
    "delivered",
    "cancelled",
    "returned",
    "rejected",
]


class OrderStatusLine(Out):
    line_id: str
    sku: str
    qty: int
    status: LineStatus
    allocated: int = 0
    shipped: int = 0
    cancelled: int = 0
    returned: int = 0


class Refusal(Out):
    command: str
    reason: str
    at: datetime


class OrderStatus(Out):
    order_id: str
    status: LineStatus
    lines: tuple[OrderStatusLine, ...]
    occurred_at: datetime
    # optional addition: why the last modification was refused
    refusal: Refusal | None = None


class DeadLetter(Out):
    source_topic: str
    partition: int | None
    offset: int | None
    key: str | None
    error: str
    detail: str
    payload: str
    occurred_at: datetime
