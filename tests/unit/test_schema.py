"""The checked-in AsyncAPI document and JSON Schemas (docs/schema) against the
event models they are generated from."""
from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

import pytest

from stockflow.streams import events as ev
from stockflow.streams import schema
from stockflow.streams.codec import decode, encode
from stockflow.streams.exceptions import DecodeError
from stockflow.streams.topics import SPECS, Topics
from tests.support import movement, movement_batch, node_record, now_iso, order_create

CONTRACT = {name: spec for name, spec in SPECS.items() if not spec.internal}
INTERNAL = {name: spec for name, spec in SPECS.items() if spec.internal}
# every value form of a contract topic (the main one and those it also accepts)
MODELS = {model.__name__: model for spec in CONTRACT.values() for model in spec.values}


def generated() -> dict[str, str]:
    return schema.generated_files(schema.package_version(), Topics().prefix, schema.local_broker())


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(generated()[schema.ASYNCAPI_FILE])


# ------------------------------------------------- a small JSON Schema check
# jsonschema is not a dependency; this covers the keywords pydantic emits for
# our models and refuses any other, so a new keyword fails loudly instead of
# being skipped.
ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$defs"}
TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def resolve(root: dict, ref: str) -> Any:
    assert ref.startswith("#/"), f"only local refs are expected, got {ref}"
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def is_datetime(v: str) -> bool:
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def violations(value: Any, sch: dict, root: dict, at: str = "$") -> list[str]:
    out: list[str] = []
    for kw, arg in sch.items():
        if kw in ANNOTATIONS:
            continue
        if kw == "$ref":
            out += violations(value, resolve(root, arg), root, at)
        elif kw == "type":
            if not TYPES[arg](value):
                out.append(f"{at}: {value!r} is not {arg}")
        elif kw == "enum":
            if value not in arg:
                out.append(f"{at}: {value!r} not in {arg}")
        elif kw == "anyOf":
            if all(violations(value, s, root, at) for s in arg):
                out.append(f"{at}: {value!r} matches no alternative")
        elif kw == "properties":
            if isinstance(value, dict):
                for name, s in arg.items():
                    if name in value:
                        out += violations(value[name], s, root, f"{at}.{name}")
        elif kw == "required":
            if isinstance(value, dict):
                out += [f"{at}: missing {name}" for name in arg if name not in value]
        elif kw == "additionalProperties":
            if isinstance(value, dict) and isinstance(arg, dict):
                known = sch.get("properties", {})
                for name, v in value.items():
                    if name not in known:
                        out += violations(v, arg, root, f"{at}.{name}")
            assert arg is not False, "the contract ignores unknown fields, so none may be forbidden"
        elif kw == "items":
            if isinstance(value, list):
                for i, v in enumerate(value):
                    out += violations(v, arg, root, f"{at}[{i}]")
        elif kw in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if TYPES["number"](value):
                ok = {"minimum": value >= arg, "maximum": value <= arg,
                      "exclusiveMinimum": value > arg, "exclusiveMaximum": value < arg}[kw]
                if not ok:
                    out.append(f"{at}: {value!r} breaks {kw} {arg}")
        elif kw in ("minLength", "maxLength", "minItems", "maxItems"):
            if isinstance(value, (str, list)):
                n = len(value)
                if (kw.startswith("min") and n < arg) or (kw.startswith("max") and n > arg):
                    out.append(f"{at}: length {n} breaks {kw} {arg}")
        elif kw == "format":
            assert arg == "date-time", f"unexpected format {arg}"
            if isinstance(value, str) and not is_datetime(value):
                out.append(f"{at}: {value!r} is not a date-time")
        else:
            raise AssertionError(f"keyword {kw} is not understood by this check; extend it")
    return out


# ------------------------------------------------------------- sample events
# Valid events of every contract model as they travel: inputs as producers
# send them (decoded strictly by the model to prove they are valid), outputs
# as stockflow encodes them.
def input_samples() -> dict[str, list[dict]]:
    return {
        "Node": [node_record("N1"), node_record("N2", kind="dc", daily_capacity=500, services=[])],
        "InventoryMovement": [
            movement("SKU-1", "N1", "sale", 3),
            movement("SKU-1", "N1", "expected", 10, supply_id="PO-1", eta=now_iso(), reason="PO"),
            movement("SKU-1", "N1", "expected_cancel", supply_id="PO-1"),
        ],
        "InventoryMovementBatch": [
            movement_batch("SKU-1", [
                {"node_id": "N1", "type": "sale", "qty": 3},
                {"node_id": "N2", "type": "expected", "qty": 10, "supply_id": "PO-1", "eta": now_iso(),
                 "reason": "PO"},
                {"node_id": "N1", "type": "expected_cancel", "supply_id": "PO-1"},
                {"node_id": "N2", "type": "adjustment", "qty": -2, "reason": None},
            ]),
            movement_batch("SKU-2", [{"node_id": "N1", "type": "count", "qty": 0}] * ev.MAX_BATCH_MOVEMENTS),
        ],
        "OrderCommand": [
            order_create("O1", [("SKU-1", 2), ("SKU-2", 1)]),
            order_create("O2", [("SKU-1", 1)], method="pickup", pickup_node_id="N1"),
            {"event_id": "e-c", "occurred_at": now_iso(), "type": "cancel_line", "order_id": "O1",
             "line_id": "L1", "qty": 1},
            {"event_id": "e-r", "occurred_at": now_iso(), "type": "return_request", "order_id": "O1",
             "lines": [{"line_id": "L1", "qty": 1}]},
        ],
        "FulfillmentUpdate": [
            {"event_id": "e-f", "occurred_at": now_iso(), "order_id": "O1", "shipment_id": "S1",
             "node_id": "N1", "type": "return_received", "lines": [{"line_id": "L1", "sku": "SKU-1", "qty": 1}],
             "carrier": "dhl", "tracking_number": "T1", "condition": "damaged"},
        ],
    }


def output_samples() -> dict[str, list[ev.Out]]:
    at = datetime.fromisoformat(now_iso())
    line = {"line_id": "L1", "sku": "SKU-1", "qty": 2}
    customer = {"customer_id": "C1", "email": "c@example.com"}
    return {
        "Allocation": [ev.Allocation(
            decision_id="D1", order_id="O1", occurred_at=at, caused_by="e1", status="partial",
            shipments=[{"shipment_id": "S1", "node_id": "N1", "method": "ship", "lines": [line],
                        "distance_km": 12.5, "cost": 6.25}],
            backorders=[{**line, "expected_date": at}],
            rejected=[{**line, "reason": "no_stock"}],
        )],
        "FulfillmentRequest": [ev.FulfillmentRequest(
            request_id="R1", node_id="N1", order_id="O1", shipment_id="S1", method="ship", lines=[line],
            address={"lat": 52.5, "lon": 13.4, "country": "DE"}, action="release",
        )],
        "Notification": [ev.Notification(
            notification_id="M1", order_id="O1", type="shipped", customer=customer, channel="email",
            data={"tracking_number": "T1", "lines": [1, 2]},
        )],
        "Availability": [ev.Availability(
            sku="SKU-1", node_id="N1", on_hand=5, reserved=2, safety_stock=1, atp=2, network_atp=9, occurred_at=at,
        )],
        "OrderStatus": [ev.OrderStatus(
            order_id="O1", status="allocated", occurred_at=at,
            lines=[{**line, "status": "allocated", "allocated": 2}],
            refusal={"command": "change_address", "reason": "already shipped", "at": at},
        )],
        "DeadLetter": [ev.DeadLetter(
            source_topic="stockflow.orders.commands", partition=0, offset=None, key=None,
            error="not_json", detail="expected value", payload="{", occurred_at=at,
        )],
    }


def wire_samples() -> dict[str, list[dict]]:
    samples = {}
    for name, records in input_samples().items():
        for rec in records:
            decode(json.dumps(rec).encode(), MODELS[name], 1_000_000)  # raises if the sample is invalid
        samples[name] = records
    for name, events in output_samples().items():
        samples[name] = [json.loads(encode(e)) for e in events]
    return samples


SAMPLES = wire_samples()


def file_schema(model_name: str) -> dict:
    return json.loads(generated()[model_name + schema.SCHEMA_SUFFIX])


# --------------------------------------------------------------------- tests
def test_checked_in_files_match_the_models():
    changed = schema.differences(generated(), schema.DEFAULT_OUT)
    assert not changed, (
        f"docs/schema is out of date with the event models ({', '.join(changed)}): "
        "run `stockflow schema` and commit the result"
    )


def as_component(sch: dict) -> dict:
    return json.loads(json.dumps(sch).replace('"#/$defs/', '"#/components/schemas/'))


def test_every_contract_topic_has_its_channel_and_payload(document):
    components = document["components"]["schemas"]
    for name, spec in CONTRACT.items():
        ch = document["channels"][name]
        assert ch["address"] == f"stockflow.{spec.suffix}"
        # one message per value form, the message id the model's name
        assert list(ch["messages"]) == [model.__name__ for model in spec.values]
        for model in spec.values:
            message = ch["messages"][model.__name__]
            assert message["name"] == message["title"] == model.__name__
            payload = resolve(document, message["payload"]["$ref"])
            # the component is the event's own schema, its nested models hoisted
            own = as_component(file_schema(model.__name__))
            nested = own.pop("$defs", {})
            own.pop("$schema")
            assert payload == own
            for model_name, sub in nested.items():
                assert components[model_name] == sub


def test_internal_topics_are_not_published(document):
    addresses = {ch["address"] for ch in document["channels"].values()}
    assert addresses == {Topics().name(name) for name in CONTRACT}
    assert not addresses & {Topics().name(name) for name in INTERNAL}
    assert set(document["channels"]) == set(CONTRACT)


def test_operations_are_from_stockflows_point_of_view(document):
    by_channel = {op["channel"]["$ref"]: op for op in document["operations"].values()}
    assert len(by_channel) == len(document["operations"]) == len(CONTRACT)
    for name, spec in CONTRACT.items():
        op = by_channel[f"#/channels/{name}"]
        assert op["action"] == {"in": "receive", "out": "send"}[spec.direction]
        for ref in op["messages"]:
            assert ref["$ref"].startswith(f"#/channels/{name}/messages/")
            resolve(document, ref["$ref"])
        # every message of the channel, in the channel's order
        assert [ref["$ref"].rsplit("/", 1)[1] for ref in op["messages"]] == list(
            document["channels"][name]["messages"])


def test_message_key_names_the_key_field(document):
    for name, spec in CONTRACT.items():
        messages = document["channels"][name]["messages"]
        assert len(messages) == len(spec.values)
        for model in spec.values:
            key = messages[model.__name__]["bindings"]["kafka"]["key"]
            assert key["type"] == "string"
            assert f"`{spec.key}`" in key["description"]
            assert spec.key in model.model_fields, f"{name} is keyed by a field {model.__name__} lacks"


def test_compacted_topics_say_so(document):
    for name, spec in CONTRACT.items():
        config = document["channels"][name]["bindings"]["kafka"].get("topicConfiguration", {})
        assert ("compact" in config.get("cleanup.policy", [])) == spec.compacted


def test_the_server_is_the_local_kafka(document):
    (server,) = document["servers"].values()
    assert server["protocol"] == "kafka"
    assert server["host"] == "127.0.0.1:9092"
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "stockflow"


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in all_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in all_refs(v)]
    return []


def test_every_ref_resolves(document):
    refs = all_refs(document)
    assert any(r.startswith("#/components/schemas/") for r in refs)
    for ref in refs:
        resolve(document, ref)
    assert "$defs" not in json.dumps(document), "pydantic $defs must be hoisted into components/schemas"
    for model_name in MODELS:
        own = file_schema(model_name)
        for ref in all_refs(own):
            resolve(own, ref)


def test_a_json_schema_file_per_contract_event():
    names = {n.removesuffix(schema.SCHEMA_SUFFIX) for n in generated() if n.endswith(schema.SCHEMA_SUFFIX)}
    assert names == set(MODELS)
    assert {spec.value.__name__ for spec in CONTRACT.values()} < names


def test_samples_cover_every_contract_event():
    assert set(SAMPLES) == set(MODELS)


@pytest.mark.parametrize("model_name", sorted(SAMPLES))
def test_valid_events_validate_against_both_schemas(model_name, document):
    own = file_schema(model_name)
    component = {"$ref": f"#/components/schemas/{model_name}"}
    for sample in SAMPLES[model_name]:
        assert violations(sample, own, own) == []
        assert violations(sample, component, document) == []


@pytest.mark.parametrize("model_name", sorted(SAMPLES))
def test_events_missing_a_required_field_are_refused(model_name):
    own = file_schema(model_name)
    sample = SAMPLES[model_name][0]
    assert own["required"]
    for field in own["required"]:
        broken = {k: v for k, v in sample.items() if k != field}
        assert violations(broken, own, own), f"{model_name} without {field} passed"


def test_ill_typed_and_out_of_range_values_are_refused():
    own = file_schema("InventoryMovement")
    good = SAMPLES["InventoryMovement"][0]
    for field, bad in [("type", "teleport"), ("qty", "3"), ("qty", True), ("sku", ""), ("sku", "x" * 201),
                       ("occurred_at", "yesterday")]:
        assert violations({**good, field: bad}, own, own), f"{field}={bad!r} passed"


@pytest.mark.parametrize("model", list(MODELS.values()), ids=list(MODELS))
def test_required_fields_are_the_models(model):
    required = {name for name, f in model.model_fields.items() if f.is_required()}
    assert set(file_schema(model.__name__)["required"]) == required


def test_input_schemas_require_what_the_contract_requires():
    # DESIGN.md section 4: every input event carries event_id and occurred_at.
    for spec in CONTRACT.values():
        for model in spec.values:
            if spec.direction == "in" and model is not ev.Node:
                assert {"event_id", "occurred_at"} <= set(file_schema(model.__name__)["required"])
    movement_required = set(file_schema("InventoryMovement")["required"])
    assert movement_required == {"event_id", "occurred_at", "sku", "node_id", "type"}
    assert {"event_id", "occurred_at", "type", "order_id"} <= set(file_schema("OrderCommand")["required"])


# -------------------------------------------------------- the envelope form
def test_the_movements_channel_has_both_forms(document):
    ch = document["channels"]["movements"]
    assert list(ch["messages"]) == ["InventoryMovement", "InventoryMovementBatch"]
    assert ch["messages"]["InventoryMovementBatch"]["payload"] == {
        "$ref": "#/components/schemas/InventoryMovementBatch"}
    assert "BatchedMovement" in document["components"]["schemas"]
    # the reader's rule is written down: the envelope is the one with a movements list
    assert "told apart by their fields" in ch["description"]
    assert "`movements` list is an InventoryMovementBatch" in ch["description"]
    (op,) = [op for op in document["operations"].values() if op["channel"]["$ref"] == "#/channels/movements"]
    assert op["action"] == "receive"
    assert [ref["$ref"] for ref in op["messages"]] == [
        "#/channels/movements/messages/InventoryMovement",
        "#/channels/movements/messages/InventoryMovementBatch",
    ]


def test_single_form_channels_are_described_as_before(document):
    for name, spec in CONTRACT.items():
        if not spec.also:
            ch = document["channels"][name]
            assert ch["description"] == f"{spec.value.__name__} events keyed by `{spec.key}`."
            assert len(ch["messages"]) == 1


def test_the_envelope_schema_file_exists():
    files = generated()
    assert "InventoryMovementBatch" + schema.SCHEMA_SUFFIX in files
    assert (schema.DEFAULT_OUT / ("InventoryMovementBatch" + schema.SCHEMA_SUFFIX)).is_file()
    own = file_schema("InventoryMovementBatch")
    assert set(own["required"]) == {"event_id", "occurred_at", "sku", "movements"}
    assert set(own["$defs"]["BatchedMovement"]["required"]) == {"node_id", "type"}
    items = own["properties"]["movements"]
    assert (items["minItems"], items["maxItems"]) == (1, ev.MAX_BATCH_MOVEMENTS)


def test_envelopes_of_no_or_too_many_movements_are_refused():
    own = file_schema("InventoryMovementBatch")
    good = SAMPLES["InventoryMovementBatch"][0]
    line = good["movements"][0]
    assert violations(good, own, own) == []
    assert violations({**good, "movements": [line] * ev.MAX_BATCH_MOVEMENTS}, own, own) == []
    for bad in ([], [line] * (ev.MAX_BATCH_MOVEMENTS + 1)):
        assert violations({**good, "movements": bad}, own, own), f"{len(bad)} movements passed"
    # the model agrees with its schema
    for bad in ([], [line] * (ev.MAX_BATCH_MOVEMENTS + 1)):
        with pytest.raises(DecodeError):
            decode(json.dumps({**good, "movements": bad}).encode(), ev.InventoryMovementBatch, 10_000_000)


def test_ill_typed_envelope_lines_are_refused():
    own = file_schema("InventoryMovementBatch")
    good = SAMPLES["InventoryMovementBatch"][0]
    line = good["movements"][0]
    for field, bad in [("type", "teleport"), ("qty", "3"), ("node_id", ""), ("eta", "soon")]:
        assert violations({**good, "movements": [{**line, field: bad}]}, own, own), f"{field}={bad!r} passed"
    no_node = {k: v for k, v in line.items() if k != "node_id"}
    assert violations({**good, "movements": [no_node]}, own, own)
    assert violations({**good, "movements": line}, own, own), "a single line instead of a list passed"


def test_forms_that_cannot_be_told_apart_are_refused():
    from stockflow.streams.topics import TopicSpec

    class Lookalike(ev.InventoryMovement):
        pass

    spec = TopicSpec("x", "sku", ev.InventoryMovement, "in", also=(Lookalike,))
    with pytest.raises(ValueError, match="told apart"):
        schema.told_apart(spec)
    twice = TopicSpec("x", "sku", ev.InventoryMovement, "in", also=(ev.InventoryMovement,))
    with pytest.raises(ValueError, match="twice"):
        schema.event_models(twice)


# -------------------------------------------------------------------- CLI
def run(out, check: bool) -> int:
    return schema.main(argparse.Namespace(out=str(out), check=check))


def test_check_fails_after_a_file_is_altered(tmp_path, capsys):
    assert run(tmp_path, check=False) == 0
    assert run(tmp_path, check=True) == 0
    target = tmp_path / "OrderCommand.schema.json"
    target.write_text(target.read_text().replace('"order_id"', '"orderId"'))
    capsys.readouterr()
    assert run(tmp_path, check=True) == 1
    assert "OrderCommand.schema.json" in capsys.readouterr().out
    assert run(tmp_path, check=False) == 0
    assert run(tmp_path, check=True) == 0


def test_check_fails_on_a_missing_or_left_over_file(tmp_path):
    run(tmp_path, check=False)
    (tmp_path / schema.ASYNCAPI_FILE).unlink()
    assert run(tmp_path, check=True) == 1
    run(tmp_path, check=False)
    (tmp_path / "Removed.schema.json").write_text("{}")
    (tmp_path / "notes.md").write_text("kept")
    assert run(tmp_path, check=True) == 1
    run(tmp_path, check=False)
    assert not (tmp_path / "Removed.schema.json").exists()
    assert (tmp_path / "notes.md").exists()
    assert run(tmp_path, check=True) == 0


def test_check_of_an_empty_folder_fails(tmp_path):
    assert run(tmp_path / "nothing", check=True) == 1
