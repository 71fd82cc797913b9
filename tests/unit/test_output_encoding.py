"""encode_output writes the output models' fields itself (streams/codec.py):
these tests hold it to the bytes pydantic writes, for every output the
domain's own unit tests produce, and for hostile variants of each."""
import math
from dataclasses import dataclass

import orjson
import pytest
from pydantic import ValidationError

from stockflow.agents.orders import OUTPUT_MODELS
from stockflow.domain import lifecycle
from stockflow.domain import orders as flow
from stockflow.streams import codec
from stockflow.streams.codec import encode, encode_output

from . import test_lifecycle, test_orders_flow


def _domain_outputs(monkeypatch) -> list[tuple[str, dict]]:
    """(logical topic, body) of every output of the domain unit tests."""
    made: list[flow.Step] = []

    @dataclass
    class Recorded(flow.Step):
        def __post_init__(self) -> None:
            made.append(self)

    monkeypatch.setattr(flow, "Step", Recorded)
    monkeypatch.setattr(lifecycle, "Step", Recorded)
    for module in (test_orders_flow, test_lifecycle):
        for name in dir(module):
            if name.startswith("test_"):
                getattr(module, name)()
    monkeypatch.undo()
    return [(logical, body) for step in made for logical, _key, body in step.outputs]


@pytest.fixture(scope="module")
def outputs():
    mp = pytest.MonkeyPatch()
    try:
        found = _domain_outputs(mp)
    finally:
        mp.undo()
    return found


def _pydantic(model, body):
    try:
        return encode(model.model_validate(body))
    except ValidationError:
        return ValidationError


def _ours(model, body):
    try:
        return encode_output(model, body)
    except ValidationError:
        return ValidationError


def test_every_output_of_the_domain_tests_is_written_as_pydantic_writes_it_without_pydantic(outputs):
    kinds = {logical for logical, _ in outputs}
    assert kinds == set(OUTPUT_MODELS), kinds  # every output kind is covered
    assert len(outputs) > 100
    for logical, body in outputs:
        model = OUTPUT_MODELS[logical]
        expected = encode(model.model_validate(body))
        # the direct path, not the model's: a fallback here would hide a slow path
        assert orjson.dumps(codec._OUTPUTS[model](body)) == expected, (logical, body)
        assert encode_output(model, body) == expected


def test_the_direct_path_covers_what_the_domain_leaves_out_and_what_it_writes_as_text(outputs):
    # order-status lines carry backordered and rejected, which the model drops;
    # occurred_at is isoformat's "+00:00", which the model writes as "Z"
    status = next(b for logical, b in outputs if logical == "order_status")
    assert "backordered" in status["lines"][0]
    assert status["occurred_at"].endswith("+00:00")
    written = orjson.loads(encode_output(OUTPUT_MODELS["order_status"], status))
    assert "backordered" not in written["lines"][0] and written["occurred_at"].endswith("Z")


HOSTILE = [None, "", "x" * 201, "2026-12-07", "20261207T051851", "2026-12-07T05:18:51.5+00:00",
           "2026-12-07T05:18:51+05:30", 0, -1, 5, 2 ** 70, True, 1.5, 7.0, math.nan, math.inf, [], {}, ("a",),
           {1: "x"}, b"bytes", 10 ** 9 + 1, -91.0, 91.0, "allocated", "ship", "email", "sms", "cancelled"]


def _paths(value, path=()):
    """Every place in a body a value sits, leaves and containers alike."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, path + (i,))


def _replaced(body, path, new):
    body = orjson.loads(orjson.dumps(body))
    if not path:
        return new
    holder = body
    for p in path[:-1]:
        holder = holder[p]
    holder[path[-1]] = new
    return body


def _without(body, path):
    body = orjson.loads(orjson.dumps(body))
    holder = body
    for p in path[:-1]:
        holder = holder[p]
    if isinstance(holder, dict):
        del holder[path[-1]]
    return body


def test_hostile_variants_are_written_or_refused_exactly_as_pydantic_would(outputs):
    # One body per kind and shape (with and without backorders, rejections,
    # refusals, addresses), every value in it replaced by each hostile value,
    # and every key removed: the bytes match, or both refuse.
    shapes = {}
    for logical, body in outputs:
        shapes.setdefault((logical, tuple(sorted(_shape(body)))), (logical, body))
    checked = 0
    for logical, body in shapes.values():
        model = OUTPUT_MODELS[logical]
        for path in _paths(body):
            variants = [_replaced(body, path, bad) for bad in HOSTILE if path] + ([_without(body, path)] if path else [])
            for variant in variants:
                assert _ours(model, variant) == _pydantic(model, variant), (logical, path, variant)
                checked += 1
    assert checked > 1000


def _shape(body, path=""):
    if isinstance(body, dict):
        for k, v in body.items():
            yield f"{path}.{k}:{type(v).__name__}:{bool(v)}"
            yield from _shape(v, f"{path}.{k}")
    elif isinstance(body, list) and body:
        yield from _shape(body[0], path + "[]")
