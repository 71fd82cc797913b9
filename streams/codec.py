"""The one place where events meet Kafka bytes.

Values are UTF-8 JSON objects and keys UTF-8 strings (DESIGN.md section 3).
Decoding turns every way a record can break the contract into a
:class:`DecodeError` with a short reason, so the caller can dead-letter it.
"""
from __future__ import annotations

import base64
from datetime import datetime
from typing import TypeVar

import orjson

from pydantic import BaseModel, ValidationError

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
