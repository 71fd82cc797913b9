"""The wire contract as machine-readable documents (``stockflow schema``).

An AsyncAPI 3.0.0 document of every contract topic and one JSON Schema per
event model, generated from the pydantic models in :mod:`.events` and the
topic table in :mod:`.topics`, so the documents cannot say something the code
does not do. The output is checked in under ``docs/schema`` and a unit test
fails when it drifts from the models.

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


def event_model(spec: TopicSpec) -> type[BaseModel]:
    if not (isinstance(spec.value, type) and issubclass(spec.value, BaseModel)):
        raise TypeError(f"contract topic {spec.suffix} has no pydantic value model")
    return spec.value


# ------------------------------------------------------------ JSON Schemas
def event_schema(spec: TopicSpec) -> dict[str, Any]:
    """One self-contained JSON Schema (nested models under its own $defs)."""
    schema = event_model(spec).model_json_schema(mode=schema_mode(spec))
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def event_schemas() -> dict[str, dict[str, Any]]:
    """Model name -> its JSON Schema, one per contract topic."""
    return {event_model(spec).__name__: event_schema(spec) for spec in contract_specs().values()}


def component_schemas() -> tuple[dict[str, str], dict[str, Any]]:
    """(logical topic -> $ref of its payload, components/schemas).

    pydantic generates all models in one pass so a nested model used by
    several events (Address, ShipmentLine, ...) becomes one shared component,
    and a name clash between an input and an output form gets pydantic's own
    disambiguated names instead of one silently overwriting the other.
    """
    specs = contract_specs()
    keys = [(event_model(spec), schema_mode(spec)) for spec in specs.values()]
    refs, top = models_json_schema(keys, ref_template="#/components/schemas/{model}")
    payload_refs = {name: refs[key]["$ref"] for name, key in zip(specs, keys)}
    return payload_refs, top.get("$defs", {})


# --------------------------------------------------------------- AsyncAPI
def message_id(spec: TopicSpec) -> str:
    return event_model(spec).__name__


def key_schema(spec: TopicSpec) -> dict[str, Any]:
    return {
        "type": "string",
        "description": f"UTF-8 string: the value of the event's `{spec.key}` field",
    }


def channel(spec: TopicSpec, address: str, payload_ref: str) -> dict[str, Any]:
    model = event_model(spec)
    message = {
        "name": model.__name__,
        "title": model.__name__,
        "payload": {"$ref": payload_ref},
        "bindings": {"kafka": {"key": key_schema(spec), "bindingVersion": KAFKA_BINDING_VERSION}},
    }
    kafka: dict[str, Any] = {"topic": address, "bindingVersion": KAFKA_BINDING_VERSION}
    if spec.compacted:
        # consumers rebuilding state from this topic need to know it is compacted
        kafka["topicConfiguration"] = {"cleanup.policy": ["compact"]}
    return {
        "address": address,
        "description": f"{model.__name__} events keyed by `{spec.key}`.",
        "messages": {message_id(spec): message},
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
        "messages": [{"$ref": f"#/channels/{name}/messages/{message_id(spec)}"}],
        "summary": f"stockflow {verb} {event_model(spec).__name__} events.",
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
