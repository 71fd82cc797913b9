"""Hostile input against the codec and the HTTP order parser (no broker).

The contract (DESIGN.md section 5, "Bad input") allows exactly two outcomes
for a record: a valid event, or a dead letter with a reason. Here that means
``decode`` returns a model or raises ``DecodeError`` with a README reason,
never another exception (a RecursionError or MemoryError would kill the
agent), and whatever it returns can be written back out by both encoders we
use (pydantic for events, orjson for HTTP and internal topics).
"""
from __future__ import annotations

import json
import math
import random

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockflow.connectors.http_api import parse_order
from stockflow.streams.codec import decode, decode_key, encode
from stockflow.streams.events import FulfillmentUpdate, InventoryMovement, Node, OrderCommand
from stockflow.streams.exceptions import DecodeError

from ..hostile import DECODE_REASONS, FIELDS, INPUTS, MAY_PASS, MUST_FAIL, _dumps, _set, _with_raw, good, hostile_records

MODELS = {"Node": Node, "InventoryMovement": InventoryMovement, "OrderCommand": OrderCommand,
          "FulfillmentUpdate": FulfillmentUpdate}
LIMIT = 1_048_576  # the default: big enough that 100k strings and 10k-deep nesting get parsed
INT64 = 2**63

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.data_too_large])


def finite_and_64bit(value) -> None:
    """What every consumer of our output can read: no int beyond a Java
    long, no inf/NaN (which JSON cannot carry)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        assert -INT64 <= value < INT64, value
    elif isinstance(value, float):
        assert math.isfinite(value), value
    elif isinstance(value, dict):
        for v in value.values():
            finite_and_64bit(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            finite_and_64bit(v)


def outcome(raw: bytes | None, model: type, limit: int = LIMIT):
    """The event, or the DecodeError's reason; any other exception fails the test."""
    try:
        event = decode(raw, model, limit)
    except DecodeError as exc:
        assert exc.reason in DECODE_REASONS, exc.reason
        assert isinstance(exc.detail, str) and len(exc.detail) <= 2000
        return exc.reason
    assert isinstance(event, model)
    # A valid event must survive being written out again.
    finite_and_64bit(event.model_dump(mode="json"))
    orjson.dumps(event.model_dump(mode="json"))
    assert decode(encode(event), model, 10 * LIMIT) == event
    return event


def check_parse_order(raw: bytes, limit: int = LIMIT):
    cmd, status, body = parse_order(raw, limit)
    # Faust answers with orjson; json.dumps is what most clients will parse with.
    orjson.dumps(body)
    json.dumps(body)
    if status == 202:
        assert isinstance(cmd, OrderCommand) and body["event_id"] == cmd.event_id
        finite_and_64bit(cmd.model_dump(mode="json"))
    else:
        assert cmd is None and status in (413, 422), status
        assert isinstance(body["error"], str) and body["error"]
    return status, body


def mutated(pool):
    return st.tuples(st.sampled_from(sorted(MODELS)), st.randoms(use_true_random=False), st.sampled_from(pool))


# ------------------------------------------------------- shared mutations
@SETTINGS
@given(mutated(MUST_FAIL))
def test_broken_records_are_dead_lettered_with_the_reason_their_breakage_implies(case):
    model, rng, mutation = case
    raw, reasons = mutation(rng, model, "k1")
    got = outcome(raw, MODELS[model])
    assert got in reasons, f"{mutation.__name__}: {got!r} not in {set(reasons)} for {raw[:300]!r}"
    if model == "OrderCommand":
        status, body = check_parse_order(raw)
        # A channel may leave the envelope out (parse_order fills it), so a
        # missing event_id is the one breakage HTTP accepts.
        assert status != 202 or b'"event_id"' not in raw or b'"occurred_at"' not in raw


@SETTINGS
@given(mutated(MAY_PASS))
def test_odd_but_possibly_valid_records_decode_or_get_a_reason(case):
    model, rng, mutation = case
    raw, _ = mutation(rng, model, "k1")
    got = outcome(raw, MODELS[model])
    if mutation.__name__ in ("m_duplicate_key_last_good", "m_whitespace", "m_unicode_keys"):
        # the last duplicate wins, whitespace is JSON, unknown fields are ignored
        assert isinstance(got, MODELS[model]), got
    if model == "OrderCommand":
        check_parse_order(raw)


# --------------------------------------------------- generic hypothesis data
json_scalars = (
    st.none() | st.booleans()
    | st.integers()  # unbounded: beyond 2**63 both ways
    | st.floats(allow_nan=True, allow_infinity=True)  # json.dumps writes NaN / Infinity tokens
    | st.text(st.characters(categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cs", "Co"]), max_size=50)
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@SETTINGS
@given(st.sampled_from(sorted(MODELS)), st.binary(max_size=3000))
def test_random_bytes(model, raw):
    got = outcome(raw, MODELS[model])
    assert not isinstance(got, MODELS[model]), "random bytes made a valid event"
    if model == "OrderCommand":
        check_parse_order(raw)


@SETTINGS
@given(st.sampled_from(sorted(MODELS)), json_values)
def test_any_json_value(model, value):
    raw = json.dumps(value).encode()
    outcome(raw, MODELS[model])
    if model == "OrderCommand":
        check_parse_order(raw)


def _all_paths(model: str) -> list[tuple]:
    return sorted({p for paths in FIELDS[model].values() for p in paths})


@SETTINGS
@given(st.data(), st.sampled_from(sorted(MODELS)))
def test_any_value_in_any_field(data, model):
    path = data.draw(st.sampled_from(_all_paths(model)))
    value = data.draw(json_values | st.integers(min_value=INT64) | st.integers(max_value=-INT64 - 1))
    rec = _set(good(model, random.Random(0), "k1"), path, value)
    raw = json.dumps(rec).encode()
    got = outcome(raw, MODELS[model])
    if model == "OrderCommand":
        check_parse_order(raw)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= INT64:
        assert got == "invalid_fields", f"{path}={value} accepted"


@SETTINGS
@given(st.sampled_from(sorted(MODELS)), st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "-Infinity",
                                                         str(10**30), str(-(10**30)), str(2**63), str(-(2**63) - 1)]))
def test_numbers_out_of_range_in_every_numeric_field(model, token):
    numeric = [p for kind in ("int", "float", "cost") for p in FIELDS[model].get(kind, [])]
    for path in numeric:
        raw = _with_raw(good(model, random.Random(0), "k1"), path, token)
        assert outcome(raw, MODELS[model]) == "invalid_fields", (path, token)


@SETTINGS
@given(st.binary(max_size=64))
def test_keys_are_utf8_or_bad_key(raw):
    try:
        key = decode_key(raw)
    except DecodeError as exc:
        assert exc.reason == "bad_key"
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    else:
        assert key == raw.decode("utf-8")


# ------------------------------------------------ the integration test's batch
@pytest.mark.parametrize("logical", sorted(INPUTS))
def test_the_integration_batch_breaks_the_way_it_says(logical):
    """Every record the integration test sends must be dead-lettered for one
    of the reasons it is tagged with; checked here without a broker so that
    a wrong expectation there shows up as a clear failure here."""
    model_name, key_field = INPUTS[logical]
    model = MODELS[model_name]
    limit = 4096
    records = list(hostile_records(7, logical, 40, limit))
    assert len(records) == 40
    for h in records:
        try:
            key = decode_key(h.key)
            event = decode(h.value, model, limit)
        except DecodeError as exc:
            assert exc.reason in h.reasons, (h.name, exc.reason, h.value[:200] if h.value else h.value)
            continue
        if getattr(event, key_field) != key:
            assert h.reasons == {"key_mismatch"}, (h.name, key)
        else:
            # needs the worker's state to be refused: no such node or order
            assert h.reasons <= {"unknown_node", "unknown_order"} and h.reasons, h.name


# ------------------------------------------------------- the bugs, by name
def test_empty_value_is_empty_not_not_json():
    assert outcome(b"", InventoryMovement) == "empty"
    assert outcome(None, InventoryMovement) == "empty"


@pytest.mark.parametrize("field,token", [
    ("safety_stock", str(10**30)), ("daily_capacity", str(2**64)),
    ("cost_per_order", "1e999"), ("cost_per_km", "Infinity"), ("cost_per_km", "1e300"),
])
def test_node_numbers_are_bounded(field, token):
    # 10**30 safety stock was accepted, then GET /atp could not encode it (orjson: 64-bit ints only)
    raw = _with_raw(good("Node", random.Random(0), "N"), (field,), token)
    assert outcome(raw, Node) == "invalid_fields"


@pytest.mark.parametrize("token,http_error", [("1e999", "not_json"), ("Infinity", "not_json"), ("1e300", "invalid_fields")])
def test_unit_price_is_bounded(token, http_error):
    # an infinite unit_price made the refund amount inf (written as null),
    # and 1e300 x qty overflows to inf the same way
    raw = _with_raw(good("OrderCommand", random.Random(0), "o"), ("lines", 0, "unit_price"), token)
    assert outcome(raw, OrderCommand) == "invalid_fields"
    status, body = check_parse_order(raw)
    # orjson refuses the non-finite tokens outright; pydantic reads them
    assert status == 422 and body["error"] == http_error


def test_quantities_up_to_the_bound_still_decode():
    rec = good("InventoryMovement", random.Random(0), "S")
    rec["qty"] = 1_000_000_000
    assert outcome(_dumps(rec), InventoryMovement).qty == 1_000_000_000
    rec["qty"] = 1_000_000_001
    assert outcome(_dumps(rec), InventoryMovement) == "invalid_fields"


@pytest.mark.parametrize("depth", [100, 254, 255, 300, 1000, 1023, 1100, 10_000])
def test_deeply_nested_http_body_is_a_422(depth):
    # 255..1023 levels: orjson read it but could not write it back (a 500)
    raw = b'{"type":"create","order_id":"o","x":' + b"[" * depth + b"]" * depth + b"}"
    status, body = check_parse_order(raw)
    assert status == 422


def test_http_body_over_the_limit_is_a_413_without_parsing():
    raw = b"[" * 5000  # not even JSON: the size is checked first
    status, body = check_parse_order(raw, limit=4096)
    assert status == 413 and body["error"] == "payload_too_large"


def test_good_order_still_accepted_over_http():
    status, body = check_parse_order(_dumps(good("OrderCommand", random.Random(0), "o1")))
    assert status == 202 and body["order_id"] == "o1"
