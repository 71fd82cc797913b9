"""The SKU owners' answers to an order (``internal.order-events``), as bytes.

An answer is a JSON object with ``order_id`` and ``kind`` (``reserved``,
``revoked``, ``backorder_filled``: domain/reservations.py builds them). The
answers one stock batch gives one order (a reserve of each of its SKUs,
decided together) go as one record, ``{"order_id", "kind": "answers",
"answers": [...]}``: each record costs the order's worker a read and a
handling, and an order of three SKUs had three (docs/benchmarks.md,
session 22). A lone answer goes as it is. The topic is stockflow's own
(DESIGN.md section 3), so its form is free to change.
"""
from __future__ import annotations

from typing import Any

import orjson

from .exceptions import DecodeError

ANSWERS = "answers"
# What the order's side reads of each kind (domain/orders.py), by JSON type
# (a dict here maps node ids to integer quantities): a field it reads and
# does not find, or of another type, would stop the orders agent.
FIELDS: dict[str, dict[str, type]] = {
    "reserved": {"sku": str, "attempt": int, "granted": dict},
    "revoked": {"sku": str, "node_id": str, "qty": int, "revoke_id": str},
    "backorder_filled": {"sku": str, "line_id": str, "nodes": dict, "fill_id": str},
}


def pack(order_id: str, values: list[str]) -> bytes:
    """One record for an order's answers, each the JSON text its owner
    stored in its outbox (agents/outbox.py), kept byte for byte."""
    if len(values) == 1:
        return values[0].encode("utf-8")
    return b"".join((b'{"order_id":', orjson.dumps(order_id), b',"kind":"answers","answers":[',
                     ",".join(values).encode("utf-8"), b"]}"))


def unpack(raw: bytes | None) -> tuple[str, list[dict[str, Any]]]:
    """The order and its answers, in the order they were decided; a record
    that is not one of ours raises :class:`DecodeError` (a dead letter,
    ``bad_internal_event``), before any of its answers is applied."""
    try:
        value = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise DecodeError("bad_internal_event", f"not JSON: {exc}"[:300]) from None
    if not isinstance(value, dict):
        raise DecodeError("bad_internal_event", "not a JSON object")
    order_id = value.get("order_id")
    if not isinstance(order_id, str):
        raise DecodeError("bad_internal_event", "no order_id")
    answers = value.get(ANSWERS) if value.get("kind") == ANSWERS else [value]
    if not isinstance(answers, list) or not answers:
        raise DecodeError("bad_internal_event", f"{ANSWERS!r} is not a list of answers")
    for answer in answers:
        if not isinstance(answer, dict) or answer.get("order_id") != order_id:
            raise DecodeError("bad_internal_event", f"an answer not about order {order_id!r}")
        fields = FIELDS.get(answer.get("kind"))
        if fields is None:
            raise DecodeError("bad_internal_event", f"unknown kind {answer.get('kind')!r}")
        for name, kind in fields.items():
            field = answer.get(name)
            # exact types, as orjson gives them: a bool is not an int here
            if type(field) is not kind or (kind is dict and any(type(q) is not int for q in field.values())):
                raise DecodeError("bad_internal_event", f"{answer['kind']} answer: {name} is {field!r:.60}")
    return order_id, answers
