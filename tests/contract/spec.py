"""Checks a value against ../shared/spec/workers-builds-schemas.json (vendored here).

The file uses its own small dialect (per-property `required`, `nullable`, `ref`); this module
reads that dialect. Results are held to "emitted whole": every property the schema lists must be
present (null where absent), and no property the schema does not list may appear.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SPEC = json.loads((HERE / "workers-builds-schemas.json").read_text())
SCHEMAS: dict[str, Any] = SPEC["schemas"]
OPERATIONS: dict[str, Any] = SPEC["operations"]

# Decided additions to the spec's field lists (DESIGN.md): the embedded connection's grant_id
# (D17) and the logs' events (D18); and G3 fields sent only when they have a value, and
# previews_base_config, sent only while previews are on (optional in Cloudflare's MCP types).
EXTRA_KEYS = {"grant_id", "events"}
OMITTED_WHEN_ABSENT = {
    "deploy_hook",
    "preview_url",
    "next_page",
    "previews_base_config",
    "closed_on",
}
# D12: real pushes report build_trigger_source "push_event" (spec §6.1, observed), which the
# schema's enum lacks.
DECIDED_ENUM_VALUES = {"builds_BuildTriggerSource": {"push_event"}}

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


class Mismatch(AssertionError):
    pass


def check(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """Raise Mismatch naming the first place `value` does not fit `schema`."""
    if value is None:
        if schema.get("nullable") or schema.get("type") in ("null", "any"):
            return
        raise Mismatch(f"{where}: null where {schema.get('type')} is required")
    if "ref" in schema and "properties" not in schema and schema.get("type", "object") == "object":
        schema = SCHEMAS[schema["ref"]]
    kind = schema.get("type", "any")
    decided = DECIDED_ENUM_VALUES.get(schema.get("ref", ""), set())
    if "enum" in schema and value not in schema["enum"] and value not in decided:
        raise Mismatch(f"{where}: {value!r} not one of {schema['enum']}")
    if kind == "string":
        _expect(isinstance(value, str), where, "a string", value)
        fmt = schema.get("format")
        if fmt == "uuid":
            _expect(bool(UUID.match(value)), where, "a uuid4", value)
        elif fmt == "date-time":
            _expect(bool(DATE_TIME.match(value)), where, "RFC 3339 ms Z time", value)
        if "pattern" in schema:
            _expect(bool(re.search(schema["pattern"], value)), where, schema["pattern"], value)
    elif kind == "integer":
        _expect(isinstance(value, int) and not isinstance(value, bool), where, "an integer", value)
    elif kind == "number":
        _expect(
            isinstance(value, int | float) and not isinstance(value, bool), where, "a number", value
        )
    elif kind == "boolean":
        _expect(isinstance(value, bool), where, "a boolean", value)
    elif kind == "array":
        _expect(isinstance(value, list), where, "an array", value)
        if "minItems" in schema:
            _expect(len(value) >= schema["minItems"], where, "more items", value)
        if "maxItems" in schema:
            _expect(len(value) <= schema["maxItems"], where, "fewer items", value)
        if "prefixItems" in schema:
            for i, (item, sub) in enumerate(zip(value, schema["prefixItems"], strict=False)):
                check(item, sub, f"{where}[{i}]")
        elif "items" in schema:
            for i, item in enumerate(value):
                check(item, schema["items"], f"{where}[{i}]")
    elif kind == "object":
        _expect(isinstance(value, dict), where, "an object", value)
        properties = schema.get("properties")
        if properties is not None:
            for name, sub in properties.items():
                if name not in value:
                    if name in OMITTED_WHEN_ABSENT:
                        continue
                    raise Mismatch(f"{where}: missing key {name!r}")
                check(value[name], sub, f"{where}.{name}")
            extra = set(value) - set(properties) - EXTRA_KEYS
            if extra:
                raise Mismatch(f"{where}: keys the spec does not list: {sorted(extra)}")
        if "additionalProperties" in schema:
            for name, item in value.items():
                check(item, schema["additionalProperties"], f"{where}.{name}")


def _expect(ok: bool, where: str, what: str, value: Any) -> None:
    if not ok:
        raise Mismatch(f"{where}: expected {what}, got {value!r}")


def check_result(operation_id: str, result: Any) -> None:
    """Check the `result` of a successful call of a spec operation."""
    spec = OPERATIONS[operation_id]["result"]
    check(result, spec, f"{operation_id}.result")


def _route(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{[^}]+\}", "[^/]+", path)
    return re.compile("^/client/v4" + pattern + "$")


ROUTES = [(op["method"], _route(op["path"]), name) for name, op in OPERATIONS.items()]


def operation_for(method: str, path: str) -> str | None:
    """The spec operation a request is, if any (e.g. `latest` before `{build_uuid}`)."""
    for op_method, pattern, name in ROUTES:
        if op_method == method and pattern.match(path):
            if name == "getBuildByUuid" and path.endswith("/latest"):
                continue
            return name
    return None
