"""``--since``/``--until`` values: durations before now, ISO dates and datetimes, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from buttress.cli.timespec import parse_when
from buttress.errors import UsageError

NOW = 1_700_000_000.0


@pytest.mark.parametrize(("text", "ago"), [
    ("45s", 45), ("30m", 1800), ("2h", 7200), ("7d", 7 * 86_400), ("1w", 604_800),
    ("1.5h", 5400), (" 2H ", 7200)])
def test_durations_count_back_from_now(text: str, ago: float) -> None:
    assert parse_when(text, NOW) == NOW - ago


def test_iso_datetimes_with_a_zone() -> None:
    assert parse_when("2024-05-01T12:00:00Z", NOW) == \
        datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()
    assert parse_when("2024-05-01T14:00:00+02:00", NOW) == \
        datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()


def test_naive_iso_values_are_local_time() -> None:
    assert parse_when("2024-05-01", NOW) == datetime(2024, 5, 1).astimezone().timestamp()


@pytest.mark.parametrize("text", ["yesterday", "7x", "-2h", "", "2024-13-01", "h"])
def test_bad_values_name_the_option(text: str) -> None:
    with pytest.raises(UsageError, match="--until") as info:
        parse_when(text, NOW, option="--until")
    assert "30m" in str(info.value)
