"""Shopify orders/create webhooks: signature check and mapping, no server."""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stockflow.connectors.exceptions import MappingError
from stockflow.connectors.shopify import handle, sign, to_order_command, verify
from stockflow.errors import StockflowError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "shopify_order_create.json"
SECRET = "shpss_0123456789abcdef"


@pytest.fixture
def raw() -> bytes:
    return FIXTURE.read_bytes()


@pytest.fixture
def payload(raw) -> dict:
    return json.loads(raw)


def fields(exc: MappingError) -> dict[str, str]:
    return {f["field"]: f["error"] for f in exc.fields}


# ------------------------------------------------------------------ mapping
def test_documented_order_maps_to_a_create_command(payload):
    cmd = to_order_command(payload)
    assert cmd.type == "create"
    assert cmd.order_id == "shopify-450789469"
    assert cmd.event_id == "shopify-450789469-create"
    assert cmd.occurred_at == datetime(2026, 11, 27, 8, 41, 7, tzinfo=timezone.utc)
    assert cmd.occurred_at.utcoffset() == timedelta(hours=1)  # Shopify's shop-local offset kept
    assert cmd.channel == "web"
    assert cmd.customer.customer_id == "shopify-207119551"
    assert cmd.customer.email == "bob.norman@mail.example.com"
    assert cmd.customer.phone == "+4930555012345"
    # the gift card (requires_shipping: false, no SKU) is not stock: left out
    assert [(ln.line_id, ln.sku, ln.qty, ln.unit_price) for ln in cmd.lines] == [
        ("466157049", "IPOD2008GREEN", 2, 199.0),
        ("703073504", "CASE-BLK-01", 1, 15.0),
    ]
    assert cmd.delivery.method == "ship"
    addr = cmd.delivery.address
    assert (addr.lat, addr.lon, addr.postal_code, addr.country) == (52.5291, 13.4013, "10119", "DE")
    assert cmd.allow_partial and cmd.allow_backorder


def test_a_redelivered_webhook_maps_to_the_same_event_id(payload):
    # Shopify retries change nothing in the order: the ids must not change either.
    again = copy.deepcopy(payload)
    again["updated_at"] = "2026-11-27T09:45:00+01:00"
    assert to_order_command(again).event_id == to_order_command(payload).event_id


@pytest.mark.parametrize("source, channel", [("web", "web"), ("pos", "store"), ("iphone", "app"),
                                             ("android", "app"), ("shopify_draft_order", "web"),
                                             ("1234567", "web"), (None, "web")])
def test_channel_follows_source_name(payload, source, channel):
    payload["source_name"] = source
    assert to_order_command(payload).channel == channel


def test_coordinates_and_ids_as_strings_are_accepted(payload):
    # Older API versions send coordinates as strings; some proxies stringify 64-bit ids.
    payload["id"] = "5678901234567"
    payload["shipping_address"]["latitude"] = "48.1372"
    payload["shipping_address"]["longitude"] = "11.5756"
    cmd = to_order_command(payload)
    assert cmd.order_id == "shopify-5678901234567"
    assert (cmd.delivery.address.lat, cmd.delivery.address.lon) == (48.1372, 11.5756)


def test_guest_checkout_uses_the_order_email(payload):
    del payload["customer"]
    cmd = to_order_command(payload)
    assert cmd.customer.customer_id == "shopify-guest-450789469"
    assert cmd.customer.email == "bob.norman@mail.example.com"


def test_line_without_sku_is_a_mapping_error(payload):
    payload["line_items"][1]["sku"] = ""
    with pytest.raises(MappingError) as exc:
        to_order_command(payload)
    assert "line_items.1.sku" in fields(exc.value)
    assert isinstance(exc.value, StockflowError)


def test_address_without_coordinates_is_a_mapping_error(payload):
    payload["shipping_address"]["latitude"] = None
    payload["shipping_address"]["longitude"] = None
    with pytest.raises(MappingError) as exc:
        to_order_command(payload)
    assert set(fields(exc.value)) == {"shipping_address.latitude", "shipping_address.longitude"}


def test_every_problem_is_listed_at_once(payload):
    del payload["shipping_address"]
    payload["created_at"] = "yesterday"
    payload["line_items"][0]["quantity"] = "2"
    payload["line_items"][0]["price"] = "free"
    with pytest.raises(MappingError) as exc:
        to_order_command(payload)
    assert set(fields(exc.value)) == {"shipping_address", "created_at", "line_items.0.quantity", "line_items.0.price"}


def test_only_non_shipping_lines_is_a_mapping_error(payload):
    payload["line_items"] = [payload["line_items"][2]]  # the gift card alone
    with pytest.raises(MappingError) as exc:
        to_order_command(payload)
    assert "line_items" in fields(exc.value)


def test_out_of_range_coordinates_fail_the_contract(payload):
    payload["shipping_address"]["latitude"] = 123.4
    with pytest.raises(MappingError) as exc:
        to_order_command(payload)
    assert any("lat" in f for f in fields(exc.value))


def test_not_an_object_is_a_mapping_error():
    with pytest.raises(MappingError):
        to_order_command([1, 2])  # type: ignore[arg-type]


# --------------------------------------------------------------- signature
def test_signature_is_base64_hmac_sha256_of_the_raw_body(raw):
    expected = base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()).decode()
    assert sign(SECRET, raw) == expected
    assert verify(SECRET, raw, expected)


def test_wrong_or_missing_signature_is_refused(raw):
    good = sign(SECRET, raw)
    assert not verify(SECRET, raw, None)
    assert not verify(SECRET, raw, "")
    assert not verify("another-secret", raw, good)
    assert not verify(SECRET, raw + b" ", good)  # one byte more: not the signed body
    assert not verify(SECRET, raw, good.encode().hex())  # hex of something is not base64 of the HMAC
    assert not verify(SECRET, raw, "ünïcode")


def test_signature_covers_raw_bytes_not_the_parsed_json(raw):
    # Same JSON, re-serialised: a different body, so the signature no longer fits.
    reformatted = json.dumps(json.loads(raw)).encode()
    assert not verify(SECRET, reformatted, sign(SECRET, raw))


# ---------------------------------------------------------- whole request
def test_handle_accepts_a_signed_order(raw):
    cmd, status, body = handle(raw, sign(SECRET, raw), "orders/create", SECRET, 1_048_576)
    assert status == 202
    assert body == {"event_id": "shopify-450789469-create", "order_id": "shopify-450789469", "type": "create"}
    assert cmd is not None and cmd.order_id == "shopify-450789469"


def test_handle_refusals(raw):
    sig = sign(SECRET, raw)
    assert handle(raw, sig, None, None, 1_048_576)[1:] == (503, {
        "error": "not_configured",
        "detail": "the Shopify webhook is off: set STOCKFLOW_SHOPIFY_WEBHOOK_SECRET to the webhook signing secret"})
    assert handle(raw, None, None, SECRET, 1_048_576)[1] == 401
    cmd, status, body = handle(raw, sign("wrong", raw), None, SECRET, 1_048_576)
    assert (cmd, status, body["error"]) == (None, 401, "unauthorized")
    assert handle(raw, sig, None, SECRET, 1024)[1] == 413
    assert handle(raw, sig, "orders/updated", SECRET, 1_048_576)[1:] == (422, {
        "error": "wrong_topic", "detail": "this URL takes orders/create webhooks, got 'orders/updated'"})
    broken = b"{not json"
    assert handle(broken, sign(SECRET, broken), None, SECRET, 1_048_576)[2]["error"] == "not_json"


def test_handle_lists_mapping_errors_as_fields(payload):
    payload["line_items"][0]["sku"] = None
    raw = json.dumps(payload).encode()
    cmd, status, body = handle(raw, sign(SECRET, raw), "orders/create", SECRET, 1_048_576)
    assert cmd is None and status == 422
    assert body["error"] == "invalid_fields"
    assert [f["field"] for f in body["fields"]] == ["line_items.0.sku"]
