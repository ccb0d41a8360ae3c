"""Time and identifiers in the one format each has on the wire (D11)."""

from __future__ import annotations

import os
import secrets
import time
from datetime import UTC, datetime


class _Virtual:
    """The emulator's virtual clock (D26): real time plus an offset, or frozen at an instant.

    One per process; `serve` never moves it (only the control API of `buildsd emulate` does), so
    it reads the system clock unchanged there.
    """

    offset_ms = 0
    frozen_ms: int | None = None


def epoch_ms() -> int:
    """Milliseconds since the epoch on the one clock every time-dependent rule reads."""
    if _Virtual.frozen_ms is not None:
        return _Virtual.frozen_ms
    return time.time_ns() // 1_000_000 + _Virtual.offset_ms


def epoch() -> float:
    """Seconds since the epoch on the same clock (for windows and deadlines)."""
    return epoch_ms() / 1000


def utc_now() -> datetime:
    return datetime.fromtimestamp(epoch_ms() / 1000, tz=UTC)


def freeze(at_ms: int | None) -> None:
    """Stop the clock at `at_ms` (None: run again from where it stands)."""
    if at_ms is None:
        if _Virtual.frozen_ms is not None:
            _Virtual.offset_ms = _Virtual.frozen_ms - time.time_ns() // 1_000_000
        _Virtual.frozen_ms = None
    else:
        _Virtual.frozen_ms = at_ms


def advance(seconds: float) -> None:
    """Move the clock forward (frozen or running); never backward, as time only goes on."""
    step = max(0, int(seconds * 1000))
    if _Virtual.frozen_ms is not None:
        _Virtual.frozen_ms += step
    else:
        _Virtual.offset_ms += step


def is_frozen() -> bool:
    return _Virtual.frozen_ms is not None


def reset_virtual() -> None:
    """Back to the system clock."""
    _Virtual.offset_ms, _Virtual.frozen_ms = 0, None


def now() -> str:
    """The current time as RFC 3339 UTC with milliseconds and Z, e.g. 2026-01-02T03:04:05.678Z.

    Stored as text in this exact fixed-width form, so it sorts and compares correctly as a string
    on SQLite and PostgreSQL alike and needs no conversion on the way out.
    """
    return format_epoch_ms(epoch_ms())


_last_second: list[object] = [None, ""]  # [epoch second, its formatted prefix]


def format_epoch_ms(ms: int) -> str:
    # Formatting the date costs more than the statement that stores it; within one second only
    # the milliseconds change, so the prefix is reused (this runs on every write).
    second = ms // 1000
    if _last_second[0] != second:
        stamp = datetime.fromtimestamp(second, tz=UTC)
        _last_second[:] = [second, stamp.strftime("%Y-%m-%dT%H:%M:%S.")]
    return f"{_last_second[1]}{ms % 1000:03d}Z"


def parse(value: str) -> datetime:
    """Parse an RFC 3339 / ISO 8601 time; a value without a zone is taken as UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def to_wire(value: datetime) -> str:
    return format_epoch_ms(int(value.timestamp() * 1000))


# uuid4's variant bits (10xx) set in the fourth group's first hex digit: 0-3 → 8-b, and so on.
_VARIANT = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def new_uuid() -> str:
    """Entity ids: hyphenated uuid4 (RFC 4122 version and variant bits), formatted directly:
    str(uuid.uuid4()) builds a UUID object and its int first, 4× the cost, several per write.
    The version and variant go into the hex digits, as uuid4 sets those bits."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_last_seq = [0]


def next_seq() -> int:
    """The insertion order of rows listed newest first by a millisecond timestamp (audit entries,
    deployments, webhook deliveries): larger than any number this process gave before, and the
    real time in microseconds when that is larger. One process's rows sort as they were written,
    even under a frozen virtual clock; two replicas' rows as their clocks wrote them, with no
    counter row for concurrent writers to wait on. Called on the event loop's thread only."""
    value = max(time.time_ns() // 1000, _last_seq[0] + 1)
    _last_seq[0] = value
    return value


def new_hex32() -> str:
    """Account ids, token ids, user ids, Worker tags: 32 lowercase hex."""
    return secrets.token_hex(16)
