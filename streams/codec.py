"""The one place where events meet Kafka bytes.

Values are UTF-8 JSON objects and keys UTF-8 strings (DESIGN.md section 3).
Decoding turns every way a record can break the contract into a
:class:`DecodeError` with a short reason, so the caller can dead-letter it.
"""
from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any, Callable, TypeVar

import orjson

from pydantic import BaseModel, ValidationError

from . import events as ev
from .exceptions import DecodeError

M = TypeVar("M", bound=BaseModel)

# Kept well under the broker's default 1 MiB message limit so a dead letter
# for a large record can always be written; the original stays in its topic.
DEAD_LETTER_PAYLOAD_LIMIT = 64 * 1024


def encode(event: BaseModel) -> bytes:
    return event.__pydantic_serializer__.to_json(event)


def datetime_text(at: datetime) -> str:
    """A timestamp as pydantic writes it in JSON (UTC as ``Z``)."""
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def encode_availability(row: dict, occurred_at: str) -> bytes:
    """An Availability event from the ATP arithmetic's own row
    (domain/atp.py ``availability_rows``): the bytes ``encode`` writes for
    the model, without building one per SKU-node (a fifth of a worker's time
    on an upload of many nodes; tests/unit/test_codec.py compares the two)."""
    return orjson.dumps({**row, "occurred_at": occurred_at})


def encode_output(model: type[BaseModel], body: Any) -> bytes:
    """An output event from the domain's dict: the bytes ``encode`` writes
    for ``model.model_validate(body)``. Validating and serialising each
    through its model took 48 us of an order's outputs, against 31 us here
    (docs/benchmarks.md, session 23), so the output models' fields are
    written here directly, with the same checks. Anything the model would
    convert or refuse, the model itself handles, raising as it always did:
    tests/unit/test_output_encoding.py holds the two to the same bytes."""
    write = _OUTPUTS.get(model)
    if write is not None:
        try:
            return orjson.dumps(write(body))
        except (_Unlike, KeyError, TypeError, AttributeError):
            pass
    return encode(model.model_validate(body))


class _Unlike(Exception):
    """A value the model would convert or refuse."""


def _str(v: Any) -> str:
    if type(v) is not str:
        raise _Unlike
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None else _str(v)


def _int(v: Any) -> int:
    if type(v) is not int:
        raise _Unlike
    return v


def _float(v: Any) -> float:
    if type(v) is float:
        return v
    if type(v) is int:  # the models' lax floats take ints
        return float(v)
    raise _Unlike


def _bounded(v: Any, low: float, high: float) -> float:
    # the strict nested models' floats (Address)
    if type(v) is not float or not low <= v <= high:
        raise _Unlike
    return v


def _text(v: Any, limit: int) -> str | None:
    """An optional string field with a max_length (Customer, Address)."""
    if v is None:
        return None
    if type(v) is not str or len(v) > limit:
        raise _Unlike
    return v


def _id(v: Any) -> str:
    """The contract's ``Id`` (streams/events.py)."""
    if type(v) is not str or not 0 < len(v) <= 200:
        raise _Unlike
    return v


def _one_of(allowed: Any) -> Callable[[Any], str]:
    allowed = frozenset(allowed.__args__)

    def check(v: Any) -> str:
        if type(v) is not str or v not in allowed:
            raise _Unlike
        return v
    return check


# What isoformat writes, and so what the domain stores: other forms, which
# pydantic may read otherwise (a date alone, the basic format), go to it.
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?([+-]\d\d:\d\d)?")


def _when(v: Any) -> str:
    if type(v) is str:
        if not _ISO.fullmatch(v):
            raise _Unlike
        v = datetime.fromisoformat(v)
    elif type(v) is not datetime:
        raise _Unlike
    return datetime_text(v)


def _opt_when(v: Any) -> str | None:
    return None if v is None else _when(v)


def _plain(v: Any) -> Any:
    """A ``dict`` field's contents: JSON's own types only."""
    t = type(v)
    if t is str or t is int or t is float or t is bool or v is None:
        return v
    if t is list:
        return [_plain(x) for x in v]
    if t is dict:
        for k in v:
            if type(k) is not str:
                raise _Unlike
        return {k: _plain(x) for k, x in v.items()}
    raise _Unlike


def _seq(v: Any) -> Any:
    if type(v) is not list and type(v) is not tuple:
        raise _Unlike
    return v


def _object(v: Any) -> dict:
    if type(v) is not dict:
        raise _Unlike
    return _plain(v)


def _qty(v: Any) -> int:
    if type(v) is not int or not 0 < v <= ev.MAX_QTY:
        raise _Unlike
    return v


def _shipment_lines(lines: Any) -> list[dict]:
    return [{"line_id": _id(ln["line_id"]), "sku": _id(ln["sku"]), "qty": _qty(ln["qty"])} for ln in _seq(lines)]


def _address(a: Any) -> dict | None:
    if a is None:
        return None
    return {"lat": _bounded(a["lat"], -90, 90), "lon": _bounded(a["lon"], -180, 180),
            "postal_code": _text(a.get("postal_code"), 40), "country": _text(a.get("country"), 60)}


_method = _one_of(ev.DeliveryMethod)
_allocation_status = _one_of(ev.Allocation.model_fields["status"].annotation)
_line_status = _one_of(ev.LineStatus)
_action = _one_of(ev.FulfillmentRequest.model_fields["action"].annotation)
_notification_type = _one_of(ev.NotificationType)
_channel = _one_of(ev.Notification.model_fields["channel"].annotation)


def _allocation(b: Any) -> dict:
    return {
        "decision_id": _str(b["decision_id"]), "order_id": _str(b["order_id"]),
        "occurred_at": _when(b["occurred_at"]), "caused_by": _str(b["caused_by"]),
        "status": _allocation_status(b["status"]),
        "shipments": [
            {"shipment_id": _str(s["shipment_id"]), "node_id": _str(s["node_id"]), "method": _method(s["method"]),
             "lines": _shipment_lines(s["lines"]), "distance_km": _float(s["distance_km"]),
             "cost": _float(s["cost"])}
            for s in _seq(b.get("shipments", ()))
        ],
        "backorders": [
            {"line_id": _str(x["line_id"]), "sku": _str(x["sku"]), "qty": _int(x["qty"]),
             "expected_date": _opt_when(x.get("expected_date"))}
            for x in _seq(b.get("backorders", ()))
        ],
        "rejected": [
            {"line_id": _str(x["line_id"]), "sku": _str(x["sku"]), "qty": _int(x["qty"]), "reason": _str(x["reason"])}
            for x in _seq(b.get("rejected", ()))
        ],
    }


def _fulfillment_request(b: Any) -> dict:
    return {
        "request_id": _str(b["request_id"]), "node_id": _str(b["node_id"]), "order_id": _str(b["order_id"]),
        "shipment_id": _str(b["shipment_id"]), "method": _method(b["method"]),
        "lines": _shipment_lines(b["lines"]), "address": _address(b.get("address")),
        "pickup_node_id": _opt_str(b.get("pickup_node_id")), "action": _action(b["action"]),
    }


def _notification(b: Any) -> dict:
    c = b["customer"]
    return {
        "notification_id": _str(b["notification_id"]), "order_id": _str(b["order_id"]),
        "type": _notification_type(b["type"]),
        "customer": {"customer_id": _id(c["customer_id"]), "email": _text(c.get("email"), 320),
                     "phone": _text(c.get("phone"), 40)},
        "channel": _channel(b["channel"]),
        "data": _object(b.get("data", {})),
    }


def _order_status(b: Any) -> dict:
    refusal = b.get("refusal")
    return {
        "order_id": _str(b["order_id"]), "status": _line_status(b["status"]),
        "lines": [
            {"line_id": _str(ln["line_id"]), "sku": _str(ln["sku"]), "qty": _int(ln["qty"]),
             "status": _line_status(ln["status"]), "allocated": _int(ln.get("allocated", 0)),
             "shipped": _int(ln.get("shipped", 0)), "cancelled": _int(ln.get("cancelled", 0)),
             "returned": _int(ln.get("returned", 0))}
            for ln in _seq(b["lines"])
        ],
        "occurred_at": _when(b["occurred_at"]),
        "refusal": None if refusal is None else {
            "command": _str(refusal["command"]), "reason": _str(refusal["reason"]), "at": _when(refusal["at"])},
    }


_OUTPUTS: dict[type[BaseModel], Callable[[Any], dict]] = {
    ev.Allocation: _allocation,
    ev.FulfillmentRequest: _fulfillment_request,
    ev.Notification: _notification,
    ev.OrderStatus: _order_status,
}


def encode_key(key: str | None) -> bytes | None:
    return None if key is None else key.encode("utf-8")


def decode_key(raw: bytes | str | None) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("bad_key", "key is not UTF-8") from exc


def decode(raw: bytes | None, model: type[M], max_bytes: int) -> M:
    if not raw:  # null and zero-length values alike: nothing to parse
        raise DecodeError("empty", "record has no value")
    if len(raw) > max_bytes:
        raise DecodeError("too_large", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise _classify(exc) from None
    except (ValueError, RecursionError) as exc:  # parser limits on hostile input
        raise DecodeError("not_json", str(exc)[:200]) from None


def _classify(exc: ValidationError) -> DecodeError:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"type": "unknown", "loc": (), "msg": str(exc)}
    if first["type"] == "json_invalid":
        return DecodeError("not_json", first["msg"][:200])
    if not first["loc"] and first["type"] in ("model_type", "dict_type", "model_attributes_type"):
        return DecodeError("not_object", "value is not a JSON object")
    return DecodeError("invalid_fields", field_errors_text(errors))


def field_errors(exc: ValidationError) -> list[dict]:
    """Field errors as the HTTP 422 body lists them."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(value)", "error": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ][:50]


def field_errors_text(errors: list[dict]) -> str:
    parts = []
    for e in errors[:10]:
        loc = ".".join(str(p) for p in e["loc"]) or "(value)"
        parts.append(f"{loc}: {e['msg']}")
    more = f" (+{len(errors) - 10} more)" if len(errors) > 10 else ""
    return "; ".join(parts)[:1000] + more


def payload_text(raw: bytes | None) -> str:
    """The original bytes as text, or base64 when they are not UTF-8."""
    if raw is None:
        return ""
    raw = raw[:DEAD_LETTER_PAYLOAD_LIMIT]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")
