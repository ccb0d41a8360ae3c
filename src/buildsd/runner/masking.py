"""Masking secrets in log lines before they are stored: every form a secret commonly takes."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

MASK = "********"
# Shorter values would mask ordinary output ("1", "on") and hide nothing worth hiding.
MIN_SECRET_CHARS = 4


def forms(secret: str) -> set[str]:
    """The secret as it may appear in output: plain, base64 (both alphabets, with and without
    padding), URL-encoded, JSON-escaped, and the hex of its UTF-8 bytes (lower and upper case)."""
    raw = secret.encode()
    found = {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)}
    found |= {raw.hex(), raw.hex().upper()}
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        found |= {encoded, encoded.rstrip("=")}
    return {form for form in found if len(form) >= MIN_SECRET_CHARS}


class Masker:
    """Replaces every form of every secret, longest first, in one regular-expression pass."""

    def __init__(self, secrets: list[str]) -> None:
        every = {
            form for secret in secrets if len(secret) >= MIN_SECRET_CHARS for form in forms(secret)
        }
        ordered = sorted(every, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, line: str) -> str:
        if self._pattern is None:
            return line
        return self._pattern.sub(MASK, line)
