"""A small client of a running buildsd (BUILDSD_URL, BUILDSD_TOKEN): the builds CLI's transport."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import click

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def http_url(url: str) -> str:
    """An http(s) URL without its trailing slash; anything else (file:, …) is refused."""
    if not url.startswith(("http://", "https://")):
        raise click.UsageError(f"{url!r}: give an http:// or https:// URL")
    return url.rstrip("/")


class Remote:
    def __init__(self, url: str, token: str | None, account_id: str | None) -> None:
        self.url = http_url(url)
        self.token = token
        self._account_id = account_id

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> urllib.request.Request:
        sent = {"Accept": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            sent.setdefault("Content-Type", "application/json")
        # The scheme was checked in __init__ (http or https only).
        return urllib.request.Request(self.url + path, data=body, method=method, headers=sent)  # noqa: S310

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        """The envelope's result, or a ClickException with Cloudflare's code and message."""
        body = None if payload is None else json.dumps(payload).encode()
        try:
            with urllib.request.urlopen(self._request(method, path, body), timeout=30) as answer:  # noqa: S310
                envelope = json.load(answer)
        except urllib.error.HTTPError as exc:
            try:
                errors = json.load(exc).get("errors") or []
            except ValueError:
                errors = []
            said = "; ".join(f"{e.get('code')} {e.get('message')}" for e in errors)
            raise click.ClickException(f"{method} {path}: HTTP {exc.code} {said}".strip()) from exc
        except urllib.error.URLError as exc:
            raise click.ClickException(f"cannot reach {self.url}: {exc.reason}") from exc
        return envelope.get("result")

    @property
    def account_id(self) -> str:
        """--account, else the only account the token reaches (GET /accounts)."""
        if self._account_id is None:
            accounts = self.call("GET", "/client/v4/accounts") or []
            if len(accounts) != 1:
                names = ", ".join(a["id"] for a in accounts) or "none"
                raise click.ClickException(
                    f"the token reaches {len(accounts)} accounts ({names}): give --account"
                )
            self._account_id = str(accounts[0]["id"])
        return self._account_id

    @property
    def builds(self) -> str:
        return f"/client/v4/accounts/{self.account_id}/builds"

    def worker_tag(self, worker: str) -> str:
        """A Worker's tag from its tag or its name (the name needs Workers Scripts Read)."""
        if HEX32.match(worker):
            return worker
        service = self.call(
            "GET", f"/client/v4/accounts/{self.account_id}/workers/services/{worker}"
        )
        return str(service["default_environment"]["script"]["tag"])

    def events(self, path: str, last_event_id: str | None) -> Iterator[tuple[str, str, str]]:
        """(event, id, data) of a Server-Sent Events stream, until the server ends it."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        request = self._request("GET", path, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as stream:  # noqa: S310
            event, event_id, data = "message", "", ""
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    if data:
                        yield event, event_id, data
                    event, event_id, data = "message", "", ""
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "event":
                        event = value
                    elif name == "id":
                        event_id = value
                    elif name == "data":
                        data = value


def is_tty() -> bool:
    return sys.stdout.isatty()


COLOURS = {
    "success": "green",
    "fail": "red",
    "terminated": "red",
    "cancelled": "yellow",
    "skipped": "yellow",
    "running": "blue",
    "initializing": "blue",
    "queued": "cyan",
}


def state(build: dict[str, Any]) -> str:
    value = str(build.get("build_outcome") or build.get("status"))
    return click.style(value, fg=COLOURS.get(value)) if is_tty() else value
