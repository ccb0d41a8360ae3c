"""OpenAPI 3.1 for the served operations, generated from the route table and the msgspec Structs."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from buildsd import __version__
from buildsd.api.endpoint import Operation
from buildsd.wire import Envelope, ErrorItem, ResultInfo

_REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"{([^}]+)}")
_ERRORS = {
    400: "Bad request (12002 body, 12013 query, 6003 headers)",
    401: "Missing or invalid credentials (12005, 12006)",
    403: "Not permitted (10000, 9103)",
    404: "Not found (12000)",
    408: "Request body not complete within BUILDSD_BODY_TIMEOUT_SECONDS (12002)",
    409: "Conflict (12049 already exists, 13004 not replayable)",
    413: "Request body too large (12002)",
    429: "Rate limited (971; deploy hooks 12051)",
    500: "Internal server error (10001)",
    503: "Unavailable (10001, Retry-After): the database is locked by another process or full; "
    "for /readyz also unreachable or its schema behind",
}

# The success answers that are not the envelope: /metrics' text, and the log stream's events.
_SUCCESS: dict[str, dict[str, Any]] = {
    "text/plain": {"type": "string"},
    "text/event-stream": {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string"},
            "id": {"type": "string"},
            "data": {"type": "string"},
        },
    },
}


def error_statuses(op: Operation) -> list[int]:
    """The failures an operation can answer: those its access, body, query and path imply, and
    its own. (405 is the answer of a method a path does not have, so no operation lists it.)"""
    found = {429, 500, *op.errors}  # every request can be rate limited or fail unexpectedly
    if op.access != "none":
        found |= {400, 401, 403}  # malformed, missing or insufficient credentials
    if op.body is not None or op.query is not None or op.upload:
        found.add(400)
    if op.body is not None or op.upload:
        found |= {408, 413}
    if op.path.startswith("/client/v4/"):
        found.add(503)  # the database is locked elsewhere or full (every one reads it)
    if _PARAM.findall(op.path):
        found.add(404)
    return sorted(found)


def _query_parameters(kind: type) -> list[dict[str, Any]]:
    (schema,), components = msgspec.json.schema_components([kind], ref_template=_REF)
    body = components[schema["$ref"].rsplit("/", 1)[1]]
    required = set(body.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in body.get("properties", {}).items()
    ]


def document(operations: tuple[Operation, ...]) -> dict[str, Any]:
    kinds: list[Any] = [Envelope, ErrorItem, ResultInfo]
    for op in operations:
        if op.body is not None:
            kinds.append(op.body)
        kinds.append(op.result if op.result is not None else type(None))
    schemas_list, components = msgspec.json.schema_components(kinds, ref_template=_REF)
    result_schema = dict(zip(map(id, kinds), schemas_list, strict=True))

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        result = result_schema[id(op.result if op.result is not None else type(None))]
        envelope: dict[str, Any] = {
            "type": "object",
            "required": ["success", "errors", "messages", "result"],
            "properties": {
                "success": {"const": True},
                "errors": {"type": "array", "maxItems": 0},
                "messages": {"type": "array"},
                "result": result,
            },
        }
        if op.paged:
            envelope["required"].append("result_info")
            envelope["properties"]["result_info"] = {"$ref": _REF.format(name="ResultInfo")}
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(op.path)
        ]
        if op.query is not None:
            parameters += _query_parameters(op.query)
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": ["extensions"] if op.extension else [op.tag],
            "parameters": parameters,
            "responses": {
                str(op.status): {
                    "description": "Success",
                    "content": {op.media_type: {"schema": _SUCCESS.get(op.media_type, envelope)}},
                },
                **{
                    str(status): {
                        "description": _ERRORS[status],
                        "content": {
                            "application/json": {"schema": {"$ref": _REF.format(name="Failure")}}
                        },
                    }
                    for status in error_statuses(op)
                },
            },
        }
        if op.access == "none":
            entry["security"] = []
        elif op.access in ("user-token", "account-token"):
            entry["security"] = [{"api_token": []}]
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": result_schema[id(op.body)]}},
            }
        if op.upload:  # a Worker upload: a metadata part and the script's files
            entry["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": {"type": "object"}}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry

    components["Failure"] = {
        "type": "object",
        "required": ["success", "errors", "messages", "result"],
        "properties": {
            "success": {"const": False},
            "errors": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": _REF.format(name="ErrorItem")},
            },
            "messages": {"type": "array"},
            "result": {"type": "null"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "buildsd — Cloudflare Workers Builds API",
            "version": __version__,
            "description": "Wire-compatible with api.cloudflare.com/client/v4. Operations tagged "
            "`extensions` are buildsd's own; BUILDSD_STRICT=true removes them.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "api_token": {"type": "http", "scheme": "bearer"},
                "api_email": {"type": "apiKey", "in": "header", "name": "X-Auth-Email"},
                "api_key": {"type": "apiKey", "in": "header", "name": "X-Auth-Key"},
            },
        },
        "security": [{"api_token": []}, {"api_email": [], "api_key": []}],
        "tags": [{"name": "extensions", "description": "buildsd additions (D7)"}],
    }
