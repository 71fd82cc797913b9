"""Every Prometheus metric stockflow exports, in one place (DESIGN.md section 7).

Labels are low-cardinality by rule: topics, statuses, reasons, tables; never
a SKU, node or order.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

# Input event (record timestamp) to output decision written, in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

EVENTS_PROCESSED = Counter(
    "stockflow_events_processed", "Input records processed", ["topic"], registry=REGISTRY
)
OUTBOX_RESENT = Counter(
    "stockflow_outbox_resent",
    "Records a key's last batch decided, sent again with the same ids and bytes after a crash because they "
    "were not known to be acknowledged (agents/outbox.py)",
    registry=REGISTRY,
)
RECORDS_HELD_BACK = Counter(
    "stockflow_records_held_back",
    "Input records that arrived past a hole in their partition and were read again in order (agents/inorder.py)",
    ["topic"],
    registry=REGISTRY,
)
DUPLICATES_SKIPPED = Counter(
    "stockflow_duplicates_skipped",
    "Input records whose event_id or offset was already applied",
    ["topic"],
    registry=REGISTRY,
)
PROCESSING_LATENCY = Histogram(
    "stockflow_processing_latency_seconds",
    "From the input record's timestamp to the output written",
    ["topic"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
ORDERS_RECEIVED = Counter("stockflow_orders_received", "Order creates accepted for allocation", registry=REGISTRY)
RESERVATION_RETRIES = Counter(
    "stockflow_reservation_replans",
    "Orders re-planned because an owner granted less than the view promised",
    registry=REGISTRY,
)
HTTP_REJECTED = Counter(
    "stockflow_http_rejected", "HTTP requests refused, by status", ["route", "status"], registry=REGISTRY
)
ALLOCATIONS = Counter(
    "stockflow_allocations", "Allocation decisions by status", ["status"], registry=REGISTRY
)
SPLIT_SHIPMENTS = Counter(
    "stockflow_split_shipments", "Allocations that ship from more than one node", registry=REGISTRY
)
BACKORDERS = Counter("stockflow_backorders", "Order lines backordered", registry=REGISTRY)
DEAD_LETTERS = Counter(
    "stockflow_dead_letters", "Records sent to the dead-letter topic", ["reason"], registry=REGISTRY
)
OVERSELL_VIOLATIONS = Counter(
    "stockflow_oversell_violations",
    "Reservations that would take more than ATP (a guard: must stay 0)",
    registry=REGISTRY,
)
AVAILABILITY_EVENTS = Counter(
    "stockflow_availability_events", "Availability events emitted", registry=REGISTRY
)
TABLE_KEYS = Gauge("stockflow_table_keys", "Keys held locally per table", ["table"], registry=REGISTRY)
CONSUMER_LAG = Gauge(
    "stockflow_consumer_lag", "Records behind the high watermark, per topic", ["topic"], registry=REGISTRY
)
READY = Gauge("stockflow_ready", "1 once table recovery has finished", registry=REGISTRY)


_CHILDREN: dict = {}


def labelled(metric, *values: str):
    """``metric.labels(*values)``, looked up once: ``labels`` validates and
    takes a lock on every call, and the hot paths call it per record."""
    key = (metric, values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*values)
    return child


def exposition() -> bytes:
    return generate_latest(REGISTRY)
