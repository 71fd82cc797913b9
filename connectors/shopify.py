"""Shopify ``orders/create`` webhooks as order commands.

``POST /webhooks/shopify/orders-create`` checks Shopify's signature
(``X-Shopify-Hmac-Sha256``: base64 HMAC-SHA256 of the raw body, keyed with
the webhook signing secret), maps the order to a ``create`` command and puts
it on the order commands topic, exactly like ``POST /orders``.

The order becomes ``shopify-<id>`` and its event ``shopify-<id>-create``:
Shopify delivers a webhook at least once and retries on any non-2xx answer
or timeout (each retry carries the same ``X-Shopify-Webhook-Id``), so the
same order arrives more than once; a stable event_id lets the worker's
event_id idempotency swallow the repeats without a table of webhook ids.

Mapping and verification are pure functions, unit-tested without a server.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from .. import metrics
from ..streams.codec import encode, encode_key, field_errors
from ..streams.events import OrderCommand
from .exceptions import MappingError

if TYPE_CHECKING:
    from ..app import Runtime

log = logging.getLogger("stockflow.shopify")

ROUTE = "/webhooks/shopify/orders-create"
HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
SHOPIFY_TOPIC = "orders/create"

# Shopify's source_name says where an order was placed. Storefront checkout
# ("web") and draft orders an agent completes for a customer are web orders;
# Shopify POS is a store; the Shopify mobile apps are app. Anything else
# (sales-channel apps report their own names or numeric app ids) stays
# "web": a guess that a channel is a marketplace would be wrong as often as
# right, and the channel only labels the order, it does not change sourcing.
SOURCE_CHANNELS = {
    "web": "web",
    "shopify_draft_order": "web",
    "pos": "store",
    "iphone": "app",
    "android": "app",
}


def sign(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value Shopify sends for ``body``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode("ascii")


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the signature of the raw ``body`` (constant time)."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode("ascii"), header.strip().encode("utf-8", "replace"))


# ------------------------------------------------------------------ mapping
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _id(v: Any) -> str | None:
    """Shopify ids are integers; a numeric string (some proxies stringify
    64-bit ids for JavaScript) is the same id."""
    if _is_int(v) and v > 0:
        return str(v)
    if isinstance(v, str) and v.strip().isdigit():
        return v.strip()
    return None


def _number(v: Any) -> float | None:
    """Shopify sends money as decimal strings ("199.00") and coordinates as
    numbers (older API versions as strings): accept both, nothing else."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def _text(v: Any) -> str | None:
    return (v.strip() or None) if isinstance(v, str) else None


def to_order_command(payload: dict) -> OrderCommand:
    """A Shopify order (the ``orders/create`` webhook body) as a ``create``
    command; :class:`MappingError` lists every field that cannot be mapped."""
    if not isinstance(payload, dict):
        raise MappingError([{"field": "(value)", "error": "the body must be a JSON object (a Shopify order)"}])
    errors: list[dict] = []

    def bad(field: str, error: str) -> None:
        errors.append({"field": field, "error": error})

    order_id = _id(payload.get("id"))
    if order_id is None:
        bad("id", "required: the Shopify order id (a positive integer)")

    created_at = payload.get("created_at")
    occurred_at = None
    if not isinstance(created_at, str):
        bad("created_at", "required: an RFC 3339 timestamp")
    else:
        try:
            occurred_at = datetime.fromisoformat(created_at)
        except ValueError:
            bad("created_at", f"not an RFC 3339 timestamp: {created_at[:60]!r}")
        else:
            if occurred_at.tzinfo is None:
                bad("created_at", "needs a UTC offset")

    source = payload.get("source_name")
    channel = SOURCE_CHANNELS.get(source.strip().lower(), "web") if isinstance(source, str) else "web"

    customer = payload.get("customer")
    if customer is not None and not isinstance(customer, dict):
        bad("customer", "must be an object")
        customer = None
    customer = customer or {}
    # Guest checkouts have no customer record; the order still needs someone
    # to notify, so the order itself stands in as the customer.
    cust_id = _id(customer.get("id"))
    customer_id = f"shopify-{cust_id}" if cust_id else f"shopify-guest-{order_id or 'unknown'}"
    email = _text(customer.get("email")) or _text(payload.get("email")) or _text(payload.get("contact_email"))
    phone = _text(customer.get("phone")) or _text(payload.get("phone"))

    lines = []
    items = payload.get("line_items")
    if not isinstance(items, list) or not items:
        bad("line_items", "required: at least one line item")
        items = []
    for i, item in enumerate(items):
        where = f"line_items.{i}"
        if not isinstance(item, dict):
            bad(where, "must be an object")
            continue
        # Gift cards and digital goods (requires_shipping: false) are not
        # stock at any node: nothing to source, reserve or ship.
        if item.get("requires_shipping") is False:
            continue
        line_id = _id(item.get("id"))
        if line_id is None:
            bad(f"{where}.id", "required: the line item id")
        sku = _text(item.get("sku"))
        if sku is None:
            bad(f"{where}.sku", "required: a line item without a SKU cannot be sourced (set the variant's SKU in Shopify)")
        qty = item.get("quantity")
        if not _is_int(qty) or qty <= 0:
            bad(f"{where}.quantity", "required: a positive integer")
        price = item.get("price")
        unit_price = None
        if price is not None:
            unit_price = _number(price)
            if unit_price is None or unit_price < 0:
                bad(f"{where}.price", f"not a price: {str(price)[:40]!r}")
        lines.append({"line_id": line_id, "sku": sku, "qty": qty, "unit_price": unit_price})
    if items and not lines and not any(e["field"].startswith("line_items") for e in errors):
        bad("line_items", "no line item requires shipping: nothing to fulfil")

    address = None
    ship_to = payload.get("shipping_address")
    if not isinstance(ship_to, dict):
        bad("shipping_address", "required: stockflow sources from the nearest node, so the order needs a shipping address")
    else:
        lat, lon = _number(ship_to.get("latitude")), _number(ship_to.get("longitude"))
        if lat is None:
            bad("shipping_address.latitude", "required: Shopify had not geocoded this address")
        if lon is None:
            bad("shipping_address.longitude", "required: Shopify had not geocoded this address")
        address = {
            "lat": lat,
            "lon": lon,
            "postal_code": _text(ship_to.get("zip")),
            "country": _text(ship_to.get("country_code")) or _text(ship_to.get("country")),
        }

    if errors:
        raise MappingError(errors)
    body = {
        "event_id": f"shopify-{order_id}-create",
        "occurred_at": occurred_at.isoformat(),
        "type": "create",
        "order_id": f"shopify-{order_id}",
        "channel": channel,
        "customer": {"customer_id": customer_id, "email": email, "phone": phone},
        "lines": lines,
        "delivery": {"method": "ship", "address": address},
    }
    try:
        # Through JSON, as POST /orders does, so the command meets the very
        # same strict contract a channel's own JSON would.
        return OrderCommand.model_validate_json(orjson.dumps(body), strict=True)
    except ValidationError as exc:
        raise MappingError(
            [{"field": f"(order command) {f['field']}", "error": f["error"]} for f in field_errors(exc)]
        ) from None


def handle(raw: bytes, signature: str | None, topic: str | None, secret: str | None,
           max_bytes: int) -> tuple[OrderCommand | None, int, dict]:
    """(command, HTTP status, body) for one webhook delivery: 202 with the
    command, or why not."""
    if not secret:
        return None, 503, {
            "error": "not_configured",
            "detail": "the Shopify webhook is off: set STOCKFLOW_SHOPIFY_WEBHOOK_SECRET to the webhook signing secret",
        }
    if len(raw) > max_bytes:
        return None, 413, {"error": "payload_too_large", "limit_bytes": max_bytes}
    if not signature:
        return None, 401, {"error": "unauthorized", "detail": f"missing {HMAC_HEADER} header"}
    if not verify(secret, raw, signature):
        return None, 401, {"error": "unauthorized", "detail": f"invalid {HMAC_HEADER} signature"}
    if topic and topic.strip() != SHOPIFY_TOPIC:
        return None, 422, {"error": "wrong_topic", "detail": f"this URL takes {SHOPIFY_TOPIC} webhooks, got {topic[:60]!r}"}
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, 422, {"error": "not_json", "detail": str(exc)[:200]}
    try:
        cmd = to_order_command(payload)
    except MappingError as exc:
        return None, 422, {"error": "invalid_fields", "fields": exc.fields[:50]}
    return cmd, 202, {"event_id": cmd.event_id, "order_id": cmd.order_id, "type": cmd.type}


def register(rt: "Runtime") -> None:
    from faust.web import Request, Response, View

    app = rt.app
    commands_topic = rt.faust_topics[rt.topics.order_commands]

    @app.page(ROUTE)
    class ShopifyOrdersCreate(View):
        async def post(self, request: Request) -> Response:
            raw = await request.read()
            settings = rt.settings
            cmd, status, body = handle(
                raw,
                request.headers.get(HMAC_HEADER),
                request.headers.get(TOPIC_HEADER),
                settings.secret(settings.shopify_webhook_secret),
                settings.max_payload_bytes,
            )
            if cmd is None:
                metrics.HTTP_REJECTED.labels(ROUTE, str(status)).inc()
                return self.json(body, status=status)
            fut = await commands_topic.send(key=encode_key(cmd.order_id), value=encode(cmd))
            await fut  # 202 only once the command is on the topic
            log.info("shopify order %s accepted (webhook %s)", cmd.order_id,
                     request.headers.get(WEBHOOK_ID_HEADER, "-"))
            return self.json(body, status=202)
