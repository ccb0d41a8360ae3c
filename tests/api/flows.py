"""Small steps real clients take, shared by the API tests."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import World

TAG = "dd7160bb9cef458093557736f4b9e75b"
BUILD_TOKEN_SECRET = "YQSn-xWAQiiEh9qM58wZNnyQS7FUdoqGIUAbrh7T"


def base(world: World, account: str | None = None) -> str:
    return f"/client/v4/accounts/{account or world.account}/builds"


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    return body["result"]


def failure(response: Any, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    assert body["errors"][0]["code"] == code, body
    return dict(body["errors"][0])


def connection_body(repo_id: str = "562843111", **kw: Any) -> dict[str, Any]:
    """The five fields of a repository-connection upsert."""
    return {
        "provider_account_id": "41612145",
        "provider_account_name": "octo-org",
        "provider_type": "github",
        "repo_id": repo_id,
        "repo_name": "my-worker",
        **kw,
    }


def connection(world: World, repo_id: str = "562843111", **kw: Any) -> dict[str, Any]:
    body = connection_body(repo_id, **kw)
    return dict(
        ok(world.client.put(base(world) + "/repos/connections", json=body, headers=world.auth))
    )


def build_token(world: World, name: str = "deploy") -> dict[str, Any]:
    body = {
        "build_token_name": name,
        "build_token_secret": BUILD_TOKEN_SECRET,
        "cloudflare_token_id": "4f2c8e9a1b3d5f7e9a1b3c5d7e9f1a2b",
    }
    return dict(ok(world.client.post(base(world) + "/tokens", json=body, headers=world.auth)))


def trigger_body(conn: dict[str, Any], token: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """The seven fields a trigger needs (D17)."""
    return {
        "external_script_id": TAG,
        "repo_connection_uuid": conn["repo_connection_uuid"],
        "build_token_uuid": token["build_token_uuid"],
        "trigger_name": "Deploy main",
        "branch_includes": ["main"],
        "build_command": "npm run build",
        "deploy_command": "npx wrangler deploy",
        **kw,
    }


def trigger(world: World, **kw: Any) -> dict[str, Any]:
    body = trigger_body(connection(world), build_token(world), **kw)
    return dict(ok(world.client.post(base(world) + "/triggers", json=body, headers=world.auth)))


def build(world: World, trigger_uuid: str, **body: Any) -> dict[str, Any]:
    body = body or {"branch": "main"}
    url = f"{base(world)}/triggers/{trigger_uuid}/builds"
    return dict(ok(world.client.post(url, json=body, headers=world.auth)))


# --- the Workers platform calls (D24) ----------------------------------------------------------

MODULE = b'export default { async fetch() { return new Response("hi"); } };\n'
BOUNDARY = "----buildsd-test-boundary"


def form(metadata: dict[str, Any], files: dict[str, bytes] | None = None) -> tuple[bytes, str]:
    """A multipart Worker upload as wrangler sends it: metadata, then the modules."""
    files = {"index.js": MODULE} if files is None else files
    chunks = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n'
        f"Content-Type: application/json\r\n\r\n{json.dumps(metadata)}\r\n".encode()
    ]
    for name, content in files.items():
        chunks.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"'
            f"\r\nContent-Type: application/javascript+module\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    chunks.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={BOUNDARY}"


META = {"main_module": "index.js", "compatibility_date": "2025-01-01", "bindings": []}
