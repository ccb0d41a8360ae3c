"""Spec fuzzing: schemathesis generates requests for every operation of the app's own
/client/v4/openapi.json, sends them with a real token, and checks every answer.

Properties: no 5xx; every answer is the Cloudflare envelope (except the successful answers of
/metrics and the log stream, which are text); only the statuses the document lists for the
operation; bodies match the document's schemas; invalid data is refused.

Path parameters: positive data uses the seeded world's ids in most examples (so it reaches real
rows) and schemathesis' own strings in the rest (so odd ids are fuzzed too); negative data
keeps the seeded ids and breaks the body or the query instead (the document types every path
parameter as any string, so no path value is "invalid"). The budget is FUZZ_EXAMPLES examples
per operation and mode: 15 in `make test`, derandomized so CI is repeatable; `make fuzz` raises
it and draws fresh examples on every run (a failure prints how to reproduce it).
"""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.specs.openapi import checks

from buildsd.api.routes import OPERATIONS
from tests.fuzz.conftest import Seeded

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 15)
DERANDOMIZE = not os.environ.get("FUZZ_EXAMPLES")
OPENAPI = "/client/v4/openapi.json"
# Successful answers that are not JSON envelopes (their failures are).
TEXT_ANSWERS = {"metrics", "streamBuildLogs"}
_PARAM = re.compile(r"{([^}]+)}")

load_all_checks()
CHECKS = [
    not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]
# Credentials are the world's real token, added to every request below.
CONFIG = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})


MODES = {
    op.operation_id: [GenerationMode.POSITIVE]
    + ([GenerationMode.NEGATIVE] if op.query is not None or op.body is not None else [])
    for op in OPERATIONS
}


@functools.cache
def load(document: bytes) -> Any:
    """The schema of the app's document (loaded once: every world serves the same one)."""
    return schemathesis.openapi.from_dict(json.loads(document), config=CONFIG)


def check_envelope(operation_id: str, response: Any) -> None:
    """Cloudflare's envelope: success, errors, messages, result; a failure names its errors."""
    if operation_id in TEXT_ANSWERS and response.status_code < 300:
        return
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert {"success", "errors", "messages", "result"} <= body.keys(), body
    assert body["success"] is (response.status_code < 300), body
    assert isinstance(body["errors"], list) and isinstance(body["messages"], list), body
    if not body["success"]:
        assert body["errors"] and body["result"] is None, body
        for error in body["errors"]:
            assert type(error["code"]) is int and isinstance(error["message"], str), body


@pytest.mark.parametrize("operation_id", MODES)
def test_operation_survives_fuzzing(seeded: Seeded, operation_id: str) -> None:
    """Positive data, then negative data when there is a body or a query to break (path
    parameters stay the seeded ids in negative data)."""
    world = seeded.world
    operation = load(world.client.get(OPENAPI).content).find_operation_by_id(operation_id)
    path_ids = {name: seeded.ids[name] for name in _PARAM.findall(operation.path)}

    def send(case: schemathesis.Case, real_ids: bool) -> None:
        if real_ids and path_ids:  # any string is a valid path parameter: still positive
            case.path_parameters = dict(path_ids)
        sent = case.as_transport_kwargs(base_url=str(world.client.base_url))
        headers = {**(sent.get("headers") or {}), **world.auth}
        content = sent.get("data")
        if "json" in sent:
            content = json.dumps(sent["json"]).encode()
            headers.setdefault("Content-Type", "application/json")
        response = world.client.request(
            sent["method"], sent["url"], params=sent.get("params"), headers=headers, content=content
        )
        check_envelope(operation_id, response)
        case.validate_response(response, checks=CHECKS)

    for mode in MODES[operation_id]:
        negative = mode is GenerationMode.NEGATIVE
        strategy = operation.as_strategy(
            generation_mode=mode, path_parameters=path_ids if negative else None
        )
        fuzz = hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=DERANDOMIZE,
            suppress_health_check=list(HealthCheck),
        )(
            hypothesis.given(case=strategy, real_ids=st.sampled_from([True, True, True, False]))(
                send
            )
        )
        fuzz()
