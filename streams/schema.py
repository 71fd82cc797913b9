"""The wire contract as machine-readable documents (``stockflow schema``).

An AsyncAPI 3.0.0 document of every contract topic and one JSON Schema per
event model, generated from the pydantic models in :mod:`.events` and the
topic table in :mod:`.topics`, so the documents cannot say something the code
does not do. A topic may accept more than one value form (``TopicSpec.also``):
each form is then a message of its channel, with a schema of its own. The
output is checked in under ``docs/schema`` and a unit test fails when it
drifts from the models.

Internal topics are left out: DESIGN.md section 3 lets them change freely, so
publishing them would invite consumers to depend on them.
"""
from __future__ import annotations

import importlib.metadata
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..settings import Settings
from .topics import SPECS, Topics, TopicSpec

ASYNCAPI_VERSION = "3.0.0"
# pydantic emits JSON Schema draft 2020-12; saying so lets validators pick it.
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"
ASYNCAPI_FILE = "asyncapi.json"
SCHEMA_SUFFIX = ".schema.json"
SERVER_ID = "local"

SOURCE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = SOURCE_ROOT / "docs" / "schema"

Mode = Literal["validation", "serialization"]


# ------------------------------------------------------------------ topics
def contract_specs() -> dict[str, TopicSpec]:
    """The contract's topics by logical name, in declaration order."""
    return {name: spec for name, spec in SPECS.items() if not spec.internal}


def schema_mode(spec: TopicSpec) -> Mode:
    # Inputs are documented as what stockflow accepts (fields with defaults
    # may be left out by producers); outputs as what stockflow writes. The
    # two differ for any field whose serialized form is not its input form,
    # and it is the writer's form a consumer of an output topic receives.
    return "validation" if spec.direction == "in" else "serialization"


def event_models(spec: TopicSpec) -> tuple[type[BaseModel], ...]:
    """Every value form of a contract topic, the main one (``value``) first."""
    models = spec.values
    for model in models:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"contract topic {spec.suffix} has a value form that is no pydantic model: {model!r}")
    names = [model.__name__ for model in models]
    if len(set(names)) != len(names):
        raise ValueError(f"contract topic {spec.suffix} lists a value form twice: {names}")
    return models


def event_model(spec: TopicSpec) -> type[BaseModel]:
    """The main value form of a contract topic."""
    return event_models(spec)[0]


# ------------------------------------------------------------ JSON Schemas
def event_schema(model: type[BaseModel], mode: Mode) -> dict[str, Any]:
    """One self-contained JSON Schema (nested models under its own $defs)."""
    schema = model.model_json_schema(mode=mode)
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def event_schemas() -> dict[str, dict[str, Any]]:
    """Model name -> its JSON Schema, one per value form of every contract topic."""
    out: dict[str, dict[str, Any]] = {}
    for spec in contract_specs().values():
        for model in event_models(spec):
            schema = event_schema(model, schema_mode(spec))
            # The file is named after the model: two topics may share a
            # model only if they describe it alike.
            if out.get(model.__name__, schema) != schema:
                raise ValueError(f"{model.__name__} is described differently on two topics")
            out[model.__name__] = schema
    return out


def component_schemas() -> tuple[dict[str, dict[str, str]], dict[str, Any]]:
    """(logical topic -> model name -> $ref of its payload, components/schemas).

    pydantic generates all models in one pass so a nested model used by
    several events (Address, ShipmentLine, ...) becomes one shared component,
    and a name clash between an input and an output form gets pydantic's own
    disambiguated names instead of one silently overwriting the other.
    """
    specs = contract_specs()
    keys = {name: [(model, schema_mode(spec)) for model in event_models(spec)] for name, spec in specs.items()}
    # One entry per (model, mode), in declaration order.
    unique = list(dict.fromkeys(key for topic_keys in keys.values() for key in topic_keys))
    refs, top = models_json_schema(unique, ref_template="#/components/schemas/{model}")
    payload_refs = {
        name: {model.__name__: refs[(model, mode)]["$ref"] for model, mode in topic_keys}
        for name, topic_keys in keys.items()
    }
    return payload_refs, top.get("$defs", {})


# --------------------------------------------------------------- AsyncAPI
def message_id(model: type[BaseModel]) -> str:
    return model.__name__


def own_required_fields(spec: TopicSpec, model: type[BaseModel]) -> list[str]:
    """The required fields of one of a topic's extra value forms that none of
    its other forms has: what tells a record of that form apart."""
    others = [m for m in event_models(spec) if m is not model]
    fields = [
        name for name, info in model.model_fields.items()
        if info.is_required() and not any(name in m.model_fields for m in others)
    ]
    if not fields:
        raise ValueError(f"{model.__name__} on {spec.suffix} has no required field of its own to be told apart by")
    return fields


def told_apart(spec: TopicSpec) -> str:
    """How a reader tells the value forms of a topic apart, in words."""
    main, *extra = event_models(spec)
    kinds = {"array": "list", "object": "object"}
    parts = []
    for model in extra:
        props = model.model_json_schema(mode=schema_mode(spec)).get("properties", {})
        named = []
        for field in own_required_fields(spec, model):
            kind = kinds.get(props.get(field, {}).get("type"))
            named.append(f"a `{field}` {kind}" if kind else f"`{field}`")
        parts.append(f"a record with {' and '.join(named)} is {article(model.__name__)} {model.__name__}")
    return (
        "The forms are told apart by their fields: "
        + "; ".join(parts)
        + f"; any other record is {article(main.__name__)} {main.__name__}."
    )


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def listed(names: list[str], conjunction: str) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


def key_schema(spec: TopicSpec) -> dict[str, Any]:
    return {
        "type": "string",
        "description": f"UTF-8 string: the value of the event's `{spec.key}` field",
    }


def message(spec: TopicSpec, model: type[BaseModel], payload_ref: str) -> dict[str, Any]:
    return {
        "name": model.__name__,
        "title": model.__name__,
        "payload": {"$ref": payload_ref},
        "bindings": {"kafka": {"key": key_schema(spec), "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def channel(spec: TopicSpec, address: str, payload_refs: dict[str, str]) -> dict[str, Any]:
    models = event_models(spec)
    kafka: dict[str, Any] = {"topic": address, "bindingVersion": KAFKA_BINDING_VERSION}
    if spec.compacted:
        # consumers rebuilding state from this topic need to know it is compacted
        kafka["topicConfiguration"] = {"cleanup.policy": ["compact"]}
    description = f"{listed([m.__name__ for m in models], 'or')} events keyed by `{spec.key}`."
    if len(models) > 1:
        description += " " + told_apart(spec)
    return {
        "address": address,
        "description": description,
        "messages": {
            message_id(model): message(spec, model, payload_refs[model.__name__]) for model in models
        },
        "bindings": {"kafka": kafka},
    }


def operation(name: str, spec: TopicSpec) -> dict[str, Any]:
    # AsyncAPI 3 operations are the application's own view: stockflow
    # receives from the topics others write and sends to the ones it owns.
    action = "receive" if spec.direction == "in" else "send"
    verb = "reads" if action == "receive" else "writes"
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{name}"},
        "messages": [
            {"$ref": f"#/channels/{name}/messages/{message_id(model)}"} for model in event_models(spec)
        ],
        "summary": f"stockflow {verb} {listed([m.__name__ for m in event_models(spec)], 'and')} events.",
    }


def operation_id(name: str, spec: TopicSpec) -> str:
    return f"{'receive' if spec.direction == 'in' else 'send'}_{name}"


def asyncapi_document(version: str, prefix: str, broker: str) -> dict[str, Any]:
    specs = contract_specs()
    payload_refs, schemas = component_schemas()
    topics = Topics(prefix)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "stockflow",
            "version": version,
            "description": (
                "Stream-processing order management on Kafka: the wire contract "
                "(DESIGN.md sections 3 and 4). Values are UTF-8 JSON objects, keys "
                "UTF-8 strings; unknown fields are ignored. Rules that span fields "
                "(what each event type requires) are in DESIGN.md, not in the schemas. "
                "Generated by `stockflow schema`; do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            SERVER_ID: {
                "host": broker,
                "protocol": "kafka",
                "description": "the local broker of `stockflow kafka start`",
            }
        },
        "channels": {
            name: channel(spec, topics.name(name), payload_refs[name]) for name, spec in specs.items()
        },
        "operations": {operation_id(name, spec): operation(name, spec) for name, spec in specs.items()},
        "components": {"schemas": schemas},
    }


# ------------------------------------------------------------------ files
def render(doc: dict[str, Any]) -> str:
    # Sorted keys and a fixed layout make the drift check a byte comparison.
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def package_version(root: Path = SOURCE_ROOT) -> str:
    # The source tree's pyproject wins: an editable install's metadata only
    # follows a version bump after reinstalling, which would fail the drift
    # check for a reason that has nothing to do with the contract.
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        return tomllib.loads(pyproject.read_text("utf-8"))["project"]["version"]
    return importlib.metadata.version("stockflow")


def local_broker() -> str:
    # The declared default, not Settings(): the environment must not leak
    # into a checked-in file.
    return Settings.model_fields["kafka_bootstrap"].default


def generated_files(version: str, prefix: str, broker: str) -> dict[str, str]:
    """File name -> text of everything ``stockflow schema`` writes."""
    files = {ASYNCAPI_FILE: render(asyncapi_document(version, prefix, broker))}
    for name, schema in event_schemas().items():
        files[name + SCHEMA_SUFFIX] = render(schema)
    return files


def is_generated_name(name: str) -> bool:
    return name == ASYNCAPI_FILE or name.endswith(SCHEMA_SUFFIX)


def differences(files: dict[str, str], out: Path) -> list[str]:
    """Names of files that are missing, differ, or are left over in ``out``."""
    differ = [
        name
        for name, text in files.items()
        if not (out / name).is_file() or (out / name).read_bytes() != text.encode("utf-8")
    ]
    present = [p.name for p in out.glob("*")] if out.is_dir() else []
    stale = [name for name in present if is_generated_name(name) and name not in files]
    return sorted(differ) + sorted(stale)


def write(files: dict[str, str], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    # A removed event must not leave its schema behind looking current.
    for p in out.glob("*"):
        if is_generated_name(p.name) and p.name not in files:
            p.unlink()
    written = []
    for name, text in files.items():
        path = out / name
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written


def main(args) -> int:
    out = Path(args.out) if getattr(args, "out", None) else DEFAULT_OUT
    files = generated_files(package_version(), Topics().prefix, local_broker())
    if getattr(args, "check", False):
        changed = differences(files, out)
        for name in changed:
            print(f"differs from the models: {out / name}")
        if changed:
            print("run `stockflow schema` to regenerate")
            return 1
        print(f"{len(files)} files in {out} match the models")
        return 0
    for path in write(files, out):
        print(f"wrote {path}")
    return 0
