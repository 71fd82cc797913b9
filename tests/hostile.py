"""Hostile records for every input topic, shared by the unit and integration tests.

A record here is ``Hostile(name, key, value, reasons)``: ``reasons`` is the set
of dead-letter reasons the record may get, decided by how it was broken (not
by running the code under test), or empty for a record that may be valid
(unicode ids, duplicate keys whose last value is good). ``hostile_records``
yields only records that must be dead-lettered; the hypothesis strategies in
the unit tests draw from every mutation, the maybe-valid ones included.

Everything is driven by a ``random.Random`` so that the integration test
sends the same batch on every run (seeded) and hypothesis can drive the very
same mutations (``st.randoms``).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Callable, Iterator

# The contract's input topics (logical names as in streams/topics.py) and
# the field that must equal the record key.
INPUTS = {
    "nodes": ("Node", "node_id"),
    "movements": ("InventoryMovement", "sku"),
    "order_commands": ("OrderCommand", "order_id"),
    "fulfillment_updates": ("FulfillmentUpdate", "order_id"),
}

# README "Dead-letter reasons".
KNOWN_REASONS = frozenset({
    "empty", "too_large", "not_json", "not_object", "invalid_fields", "bad_key", "key_mismatch",
    "unknown_node", "unknown_order", "duplicate_order_conflict", "unknown_shipment", "node_mismatch",
    "invalid_transition", "bad_internal_command", "bad_internal_event",
})
DECODE_REASONS = frozenset({"empty", "too_large", "not_json", "not_object", "invalid_fields"})

BIG_INTS = (2**63, 2**63 - 1 + 10, -(2**63) - 1, 2**64, 10**30, -(10**30), 10**400)
NONFINITE = ("1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1e309")
WEIRD_TEXT = (
    "\u00e9t\u00e9", "\U0001f4a9", "\u202eRTL", "a\u0301\u0301\u0301", "\u0000", "\ufeffBOM", "\u4e2d\u6587",
    "\U0010ffff", "\u2028\u2029", "' OR 1=1 --", "../../etc/passwd", "%00", "\\u0041",
)


def _ts() -> str:
    return "2026-11-22T10:00:00Z"


def good(model: str, rng: random.Random, key: str | None = None) -> dict:
    """A valid record of each input model (its key field is ``key``)."""
    k = key or f"k{rng.randrange(10**6)}"
    if model == "Node":
        return {"node_id": k, "kind": "store", "lat": 52.5, "lon": 13.4, "services": ["ship"],
                "daily_capacity": None, "safety_stock": 0, "cost_per_order": 5.0, "cost_per_km": 0.1, "active": True}
    if model == "InventoryMovement":
        return {"event_id": f"e{rng.randrange(10**9)}", "occurred_at": _ts(), "sku": k, "node_id": "N1",
                "type": "receipt", "qty": 5}
    if model == "OrderCommand":
        return {"event_id": f"e{rng.randrange(10**9)}", "occurred_at": _ts(), "type": "create", "order_id": k,
                "channel": "web", "customer": {"customer_id": "c1", "email": "c@example.com"},
                "lines": [{"line_id": "L1", "sku": "S1", "qty": 1, "unit_price": 9.99}],
                "delivery": {"method": "ship", "address": {"lat": 52.5, "lon": 13.4, "country": "DE"}},
                "allow_partial": True, "allow_backorder": True}
    if model == "FulfillmentUpdate":
        return {"event_id": f"e{rng.randrange(10**9)}", "occurred_at": _ts(), "order_id": k, "shipment_id": "SH1",
                "node_id": "N1", "type": "shipped", "lines": [{"line_id": "L1", "sku": "S1", "qty": 1}]}
    raise ValueError(model)


# Paths of required fields (every one breaks the record when removed or
# ill-typed), by kind: "id" strings, "int" and "float" numbers, "enum",
# "time", "list".
FIELDS = {
    "Node": {"id": [("node_id",)], "enum": [("kind",)], "float": [("lat",), ("lon",)],
             "int": [("safety_stock",), ("daily_capacity",)], "cost": [("cost_per_order",), ("cost_per_km",)],
             "list": [("services",)]},
    "InventoryMovement": {"id": [("event_id",), ("sku",), ("node_id",)], "enum": [("type",)],
                          "int": [("qty",)], "time": [("occurred_at",)]},
    "OrderCommand": {"id": [("event_id",), ("order_id",), ("lines", 0, "line_id"), ("lines", 0, "sku"),
                            ("customer", "customer_id")],
                     "enum": [("type",), ("channel",), ("delivery", "method")],
                     "int": [("lines", 0, "qty")], "time": [("occurred_at",)],
                     "float": [("delivery", "address", "lat")], "cost": [("lines", 0, "unit_price")],
                     "list": [("lines",)]},
    "FulfillmentUpdate": {"id": [("event_id",), ("order_id",), ("shipment_id",), ("node_id",), ("lines", 0, "sku")],
                          "enum": [("type",)], "int": [("lines", 0, "qty")], "time": [("occurred_at",)],
                          "list": [("lines",)]},
}

# Values of the wrong JSON type for each kind (never null for a field with
# a default of null: daily_capacity and unit_price take null legitimately).
WRONG = {
    "id": [5, 1.5, True, [], {}, ["x"], {"a": "b"}, ""],
    "enum": [1, True, [], "", "SHIPPED", "r\u00e9ceipt", "\u0000"],
    "int": ["5", 5.5, True, [], {}, "1e3", 0.0],
    "float": ["1.0", True, [], {}, 1000.0, -1000.0],
    "cost": ["1.0", True, [], {}, -1.0],
    "time": [1700000000, "yesterday", "2026-13-45T99:99:99Z", True, [], ""],
    "list": ["ship", 5, {"a": 1}, True],
}


@dataclass(frozen=True)
class Hostile:
    name: str
    key: bytes | None
    value: bytes | None
    reasons: frozenset  # allowed dead-letter reasons; empty: may be valid


def _paths(model: str, *kinds: str) -> list[tuple]:
    return [p for k in kinds for p in FIELDS[model].get(k, [])]


def _set(rec: dict, path: tuple, value) -> dict:
    node = rec
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return rec


def _drop(rec: dict, path: tuple) -> dict:
    node = rec
    for p in path[:-1]:
        node = node[p]
    del node[path[-1]]
    return rec


def _dumps(rec) -> bytes:
    # ensure_ascii: a lone surrogate becomes a \udXXX escape, which is how a
    # broken producer writes one.
    return json.dumps(rec, ensure_ascii=True, separators=(",", ":")).encode()


def _with_raw(rec: dict, path: tuple, raw_text: str) -> bytes:
    """The record with the value at ``path`` replaced by raw JSON text
    (``1e999``, ``NaN``, 10**400, deep nesting: what json.dumps cannot write)."""
    marker = "RAW-MARKER-7f3a"
    raw = _dumps(_set(rec, path, marker))
    return raw.replace(b'"' + marker.encode() + b'"', raw_text.encode())


def _nest(depth: int, leaf: str = "1", obj: bool = False) -> str:
    if obj:
        return '{"a":' * depth + leaf + "}" * depth
    return "[" * depth + leaf + "]" * depth


INVALID_JSON = frozenset({"not_json"})
NOT_OBJECT = frozenset({"not_object"})
FIELDS_BAD = frozenset({"invalid_fields"})


# Each mutation: (rng, model, own key) -> (value bytes, allowed reasons).
def m_random_bytes(rng, model, k):
    # 0xff never starts valid UTF-8, let alone JSON
    return b"\xff" + rng.randbytes(rng.randrange(0, 300)), INVALID_JSON


def m_garbage_text(rng, model, k):
    junk = "".join(rng.choice("abc<>{}[]:,\"'\\ \n\t\u00e9\U0001f4a9") for _ in range(rng.randrange(1, 200)))
    return ("x" + junk).encode("utf-8", "surrogatepass"), INVALID_JSON


def m_wrong_shape(rng, model, k):
    v = rng.choice(["[]", "[{}]", json.dumps([good(model, rng, k)]), '"text"', "123", "-0.5", "null", "true",
                    "false", "1e999", '"{\\"a\\":1}"', json.dumps(json.dumps(good(model, rng, k)))])
    return v.encode(), NOT_OBJECT


def m_truncated(rng, model, k):
    raw = _dumps(good(model, rng, k))
    return raw[: rng.randrange(1, len(raw) - 1)], INVALID_JSON


def m_bom(rng, model, k):
    return b"\xef\xbb\xbf" + _dumps(good(model, rng, k)), INVALID_JSON


def m_invalid_utf8_in_string(rng, model, k):
    raw = _dumps(good(model, rng, k))
    bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"])
    i = raw.index(b'":"') + 3  # inside the first string value
    return raw[:i] + bad + raw[i:], INVALID_JSON


def m_lone_surrogate(rng, model, k):
    rec = good(model, rng, k)
    path = rng.choice(_paths(model, "id"))
    return _with_raw(rec, path, rng.choice(['"\\ud800"', '"x\\udfff"', '"\\udc00\\ud800"', '"\\ud83d"'])), INVALID_JSON


def m_wrong_type(rng, model, k):
    kind = rng.choice([x for x in FIELDS[model] if x in WRONG])
    path = rng.choice(FIELDS[model][kind])
    return _dumps(_set(good(model, rng, k), path, rng.choice(WRONG[kind]))), FIELDS_BAD


def m_missing(rng, model, k):
    path = rng.choice(_paths(model, "id", "enum", "time", "float") or _paths(model, "id"))
    return _dumps(_drop(good(model, rng, k), path)), FIELDS_BAD


def m_big_int(rng, model, k):
    path = rng.choice(_paths(model, "int", "float", "cost"))
    return _with_raw(good(model, rng, k), path, str(rng.choice(BIG_INTS))), FIELDS_BAD


def m_nonfinite(rng, model, k):
    path = rng.choice(_paths(model, "int", "float", "cost"))
    # pydantic reads NaN and Infinity as floats (an extension), 1e999 as inf
    return _with_raw(good(model, rng, k), path, rng.choice(NONFINITE)), FIELDS_BAD | INVALID_JSON


def m_huge_string(rng, model, k):
    path = rng.choice(_paths(model, "id", "enum"))
    return _dumps(_set(good(model, rng, k), path, rng.choice(WEIRD_TEXT) + "x" * 100_000)), FIELDS_BAD


def m_deep_value(rng, model, k):
    # jiter stops at a few hundred levels (not_json); below that the field
    # has the wrong type (invalid_fields). Never a RecursionError.
    path = rng.choice(_paths(model, "id", "int", "float"))
    depth = rng.choice([10, 150, 300, 2000, 10_000])
    return _with_raw(good(model, rng, k), path, _nest(depth, obj=rng.random() < 0.5)), FIELDS_BAD | INVALID_JSON


def m_deep_whole(rng, model, k):
    depth = rng.choice([300, 2000, 10_000])
    if rng.random() < 0.5:
        return _nest(depth).encode(), INVALID_JSON
    return _nest(depth, obj=True).encode(), INVALID_JSON


def m_duplicate_key_last_bad(rng, model, k):
    kind = rng.choice([x for x in FIELDS[model] if x in WRONG])
    path = rng.choice([p for p in FIELDS[model][kind] if len(p) == 1] or _paths(model, "id"))
    # wrong for every kind of field, lists included
    bad = rng.choice([True, False, {"x": 1}, [[[]]]])
    raw = _dumps(good(model, rng, k))
    return raw[:-1] + b"," + json.dumps(path[0]).encode() + b":" + json.dumps(bad).encode() + b"}", FIELDS_BAD


def m_semantic(rng, model, k):
    rec = good(model, rng, k)
    if model == "Node":
        rec.update(rng.choice([{"lat": 90.5}, {"lat": -91.0}, {"lon": 180.01}, {"lon": -181.0}, {"lat": 1e300},
                               {"safety_stock": -1}, {"daily_capacity": -1}, {"kind": "warehouse"},
                               {"services": ["ship", "teleport"]}]))
    elif model == "InventoryMovement":
        rec.update(rng.choice([{"qty": 0}, {"qty": -5}, {"type": "count", "qty": -1}, {"type": "adjustment", "qty": 0},
                               {"type": "expected", "qty": 3}, {"type": "expected_cancel", "qty": None}]))
    elif model == "OrderCommand":
        rec.update(rng.choice([{"lines": []}, {"lines": [rec["lines"][0], rec["lines"][0]]},
                               {"type": "cancel_line"}, {"type": "change_address"}, {"type": "return_request", "lines": None},
                               {"delivery": {"method": "pickup"}}, {"lines": [{"line_id": "L", "qty": 1}]},
                               {"lines": [rec["lines"][0]] * 501}]))
    else:
        rec.update(rng.choice([{"lines": [{"line_id": "L", "sku": "S", "qty": 0}]}, {"condition": "meh"},
                               {"lines": [{"line_id": "L", "sku": "S", "qty": 1}] * 501}]))
    return _dumps(rec), FIELDS_BAD


def m_empty(rng, model, k):
    return b"", frozenset({"empty"})


# May be valid: the unit tests accept a model or a known DecodeError.
def m_unicode_values(rng, model, k):
    rec = good(model, rng, k)
    path = rng.choice(_paths(model, "id"))
    return _dumps(_set(rec, path, "".join(rng.choice(WEIRD_TEXT) for _ in range(rng.randrange(1, 8))))), frozenset()


def m_unicode_keys(rng, model, k):
    rec = good(model, rng, k)
    for _ in range(rng.randrange(1, 6)):
        rec[rng.choice(WEIRD_TEXT) + str(rng.randrange(100))] = rng.choice([1, "x", None, [], {"\U0001f4a9": 1}])
    return json.dumps(rec, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass"), frozenset()


def m_duplicate_key_last_good(rng, model, k):
    raw = _dumps(good(model, rng, k))
    field = rng.choice(_paths(model, "id"))[0]
    return b'{"' + field.encode() + b'":12345,' + raw[1:], frozenset()


def m_whitespace(rng, model, k):
    ws = rng.choice([b" ", b"\n", b"\t", b"\r\n"]) * rng.randrange(1, 50)
    return ws + _dumps(good(model, rng, k)) + ws, frozenset()


MUST_FAIL: list[Callable] = [
    m_random_bytes, m_garbage_text, m_wrong_shape, m_truncated, m_bom, m_invalid_utf8_in_string,
    m_lone_surrogate, m_wrong_type, m_missing, m_big_int, m_nonfinite, m_huge_string, m_deep_value,
    m_deep_whole, m_duplicate_key_last_bad, m_semantic, m_empty,
]
MAY_PASS: list[Callable] = [m_unicode_values, m_unicode_keys, m_duplicate_key_last_good, m_whitespace]


def oversize(rng: random.Random, model: str, key: str, limit: int) -> bytes:
    """A record that would be valid but is a few bytes over ``limit``."""
    rec = good(model, rng, key)
    base = len(_dumps(rec)) + len(',"pad":""')
    rec["pad"] = "p" * max(0, limit + 1 + rng.randrange(0, 64) - base)
    raw = _dumps(rec)
    assert limit < len(raw) <= limit + 128, len(raw)
    return raw


def hostile_records(seed: int, logical: str, n: int, limit: int) -> Iterator[Hostile]:
    """``n`` records for one input topic that must all be dead-lettered by a
    worker whose payload limit is ``limit``, each with its allowed reasons."""
    rng = random.Random(f"{seed}:{logical}")
    model, _ = INPUTS[logical]
    # Key-level breakage first (deterministic, one of each), then payloads.
    fixed: list[Hostile] = [
        Hostile("null_key", None, _dumps(good(model, rng, "own")), frozenset({"key_mismatch"})),
        Hostile("other_key", b"someone-else", _dumps(good(model, rng, "own")), frozenset({"key_mismatch"})),
        Hostile("key_not_utf8", b"\xff\xfe\xed\xa0\x80", _dumps(good(model, rng, "own")), frozenset({"bad_key"})),
        Hostile("unicode_key_mismatch", "\U0001f4a9".encode(), _dumps(good(model, rng, "\u00e9")),
                frozenset({"key_mismatch"})),
        Hostile("oversize", b"own", oversize(rng, model, "own", limit), frozenset({"too_large"})),
        Hostile("empty_value", b"own", b"", frozenset({"empty"})),
    ]
    if logical != "nodes":  # a null value on the compacted nodes topic is a tombstone, not bad input
        fixed.append(Hostile("null_value", b"own", None, frozenset({"empty"})))
    # Well formed, but about something that does not exist.
    if logical == "movements":  # waits up to 5 s for the node view first: one is enough
        fixed.append(Hostile("unknown_node", b"own", _dumps(dict(good(model, rng, "own"), node_id="NO-SUCH-NODE")),
                             frozenset({"unknown_node"})))
    if logical == "order_commands":
        fixed.append(Hostile("cancel_unknown_order", b"ghost", _dumps(dict(good(model, rng, "ghost"), type="cancel")),
                             frozenset({"unknown_order"})))
    if logical == "fulfillment_updates":
        fixed.append(Hostile("update_unknown_order", b"ghost", _dumps(good(model, rng, "ghost")),
                             frozenset({"unknown_order"})))
    yield from fixed[:n]
    for i in range(n - len(fixed)):
        mutation = MUST_FAIL[i % len(MUST_FAIL)]
        key = f"h{i}"
        value, reasons = mutation(rng, model, key)
        if len(value) > limit:
            reasons = frozenset({"too_large"})
        yield Hostile(mutation.__name__, key.encode(), value, reasons)
