"""Reading a project's Wrangler config, lockfiles and package.json: pure functions, no I/O."""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from typing import Any

import msgspec

from buildsd.wire import PackageManager

# Wrangler's own order when several are present (findWranglerConfig): .json, .jsonc, .toml.
CONFIG_FILES = ("wrangler.json", "wrangler.jsonc", "wrangler.toml")
# Lockfile → package manager, first match wins; the same order as the runner's installers.
LOCKFILES: tuple[tuple[str, PackageManager], ...] = (
    ("bun.lockb", "bun"),
    ("bun.lock", "bun"),
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
)
DEFAULT_PACKAGE_MANAGER: PackageManager = "npm"


def config_file(names: Collection[str]) -> str | None:
    """The Wrangler config file Wrangler would pick among the files `names`, or None."""
    return next((name for name in CONFIG_FILES if name in names), None)


def package_manager(names: Collection[str]) -> PackageManager:
    """The package manager the lockfiles among `names` point to; npm when there is none."""
    return next((pm for lockfile, pm in LOCKFILES if lockfile in names), DEFAULT_PACKAGE_MANAGER)


def strip_jsonc(text: str) -> str:
    """JSON with comments (`//`, `/* */`) and trailing commas → plain JSON.

    Comments and commas inside strings are kept; a comment is replaced by a space (so it still
    separates tokens, as in JavaScript); a comma followed only by whitespace or comments before
    `}` or `]` is dropped. Anything else is left for the JSON parser to judge.
    """
    out: list[str] = []
    pending_comma: int | None = None  # index in `out` of a comma not yet followed by a value
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            end = _string_end(text, i)
            out.append(text[i:end])
            pending_comma = None
            i = end
        elif text.startswith("//", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
            out.append(" ")
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
            out.append(" ")
        elif char in "}]":
            if pending_comma is not None:
                out[pending_comma] = ""
                pending_comma = None
            out.append(char)
            i += 1
        else:
            if char == ",":
                pending_comma = len(out)
            elif not char.isspace():
                pending_comma = None
            out.append(char)
            i += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """The index just past the JSON string opening at `start` (or the end of an unclosed one)."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        elif text[i] == "\n":
            return i  # an unclosed string: stop at the line's end, the parser will refuse it
        else:
            i += 1
    return len(text)


def parse_config(file_name: str, raw: bytes) -> dict[str, Any] | None:
    """The config as a table, or None when it does not parse to one.

    `wrangler.json` is read like `wrangler.jsonc`: Wrangler accepts comments in both.
    """
    try:
        text = raw.decode("utf-8-sig")
        if file_name.endswith(".toml"):
            return tomllib.loads(text)
        parsed = msgspec.json.decode(strip_jsonc(text).encode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, msgspec.DecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def worker_names(config: dict[str, Any] | None) -> tuple[str | None, dict[str, str] | None]:
    """The top-level `name`, and each environment's Worker name as Wrangler derives it.

    An environment's own `name` wins; otherwise Wrangler deploys it as `<name>-<env>`. An
    environment with neither is left out; no name at all gives None rather than `{}`.
    """
    if config is None:
        return None, None
    name = _text(config.get("name"))
    envs: dict[str, str] = {}
    sections = config.get("env")
    if isinstance(sections, dict):
        for env, section in sections.items():
            own = _text(section.get("name")) if isinstance(section, dict) else None
            if own is not None:
                envs[env] = own
            elif name is not None:
                envs[env] = f"{name}-{env}"
    return name, envs or None


def scripts(raw: bytes | None) -> dict[str, str] | None:
    """package.json's `scripts` (string entries only), or None without a usable one."""
    if raw is None:
        return None
    try:
        package = msgspec.json.decode(raw.removeprefix(b"\xef\xbb\xbf"))
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    found = package.get("scripts") if isinstance(package, dict) else None
    if not isinstance(found, dict):
        return None
    return {key: value for key, value in found.items() if isinstance(value, str)}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
