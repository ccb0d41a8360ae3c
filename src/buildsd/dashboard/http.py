"""The dashboard's own request and reply shapes, so that Starlette stays in api/ and app.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

SESSION_COOKIE = "buildsd_session"
CSRF_COOKIE = "buildsd_csrf"
# No inline script or style anywhere: a log line that smuggles markup past escaping still runs
# nothing. frame-ancestors: no clickjacking of the cancel button.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Request:
    method: str
    path: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    cookies: Mapping[str, str]
    headers: Mapping[str, str]
    form: Mapping[str, str] = field(default_factory=dict)
    secure: bool = False  # reached over https (directly, or as the proxy says)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    media_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    # Set-Cookie values, each whole (name=value; attributes).
    cookies: list[str] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None


def cookie(name: str, value: str, *, secure: bool, max_age: int | None = None) -> str:
    """HttpOnly, SameSite=Strict, path /: never readable by script, never sent cross-site;
    Secure when the page came over https (never sent back in the clear)."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def redirect(location: str, cookies: list[str] | None = None) -> Reply:
    return Reply(status=303, headers={"Location": location}, cookies=cookies or [])
