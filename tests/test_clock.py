"""Ids and times in their wire formats (D11)."""

from __future__ import annotations

import re
import uuid

from buildsd import clock


def test_new_uuid_is_a_hyphenated_random_uuid4() -> None:
    made = {clock.new_uuid() for _ in range(2000)}
    assert len(made) == 2000
    for value in made:
        parsed = uuid.UUID(value)
        assert str(parsed) == value  # lower-case, hyphenated
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_times_are_rfc3339_utc_with_milliseconds() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", clock.now())
    assert clock.format_epoch_ms(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
