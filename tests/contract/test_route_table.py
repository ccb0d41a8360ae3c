"""The route table against the spec's operation list (spec §1)."""

from __future__ import annotations

from buildsd.api.routes import OPERATIONS, V4
from tests.contract import spec


def test_every_spec_operation_is_served_with_the_spec_method_and_path() -> None:
    served = {op.operation_id: op for op in OPERATIONS}
    for name, operation in spec.OPERATIONS.items():
        assert name in served, f"spec operation {name} is not in the route table"
        assert served[name].method == operation["method"]
        assert served[name].path == V4 + operation["path"]
        assert not served[name].extension


def test_extensions_are_not_spec_operations() -> None:
    for op in OPERATIONS:
        if op.extension:
            assert op.operation_id not in spec.OPERATIONS


def test_write_operations_need_write() -> None:
    for op in OPERATIONS:
        if op.operation_id in spec.OPERATIONS:
            permissions = spec.OPERATIONS[op.operation_id]["permissions"]
            expected = "builds:write" if permissions == ["Workers CI Write"] else "builds:read"
            if not permissions:  # triggerDeployHook: the uuid in the URL is the secret
                expected = "none"
            assert op.access == expected, op.operation_id
