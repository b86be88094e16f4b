"""Sizes and durations, as the config and the options take them and as people read them."""

from __future__ import annotations

import pytest

from proxy.core.units import human_duration, human_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), (1.5, 1.5), ("90s", 90.0), ("10m", 600.0), ("12h", 43200.0), ("7d", 604800.0),
     ("2w", 1209600.0), (" 5 ", 5.0), ("1.5m", 90.0), (0, 0.0), ("250ms", 0.25)],
)  # fmt: skip
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-1", "5 minutes", "1y", True, None, -3, "m"])
def test_what_is_not_a_duration(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration such as 30s"):
        parse_duration(text)


def test_a_positive_duration_excludes_zero() -> None:
    with pytest.raises(ValueError):
        parse_duration("0s", positive=True)
    assert parse_duration("1s", positive=True) == 1.0


@pytest.mark.parametrize("text", ["-5GB", "5 GBs", "lots", True, 1.5, None])
def test_what_is_not_a_size(text: object) -> None:
    with pytest.raises(ValueError, match="expected a size such as 500MB"):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (903, "903 B"), (3_100_000, "3.1 MB"), (45_600_000_000, "45.6 GB"),
     (1.2e12, "1.2 TB"), (999_999, "1000.0 kB")],
)  # fmt: skip
def test_sizes_for_people(size: float, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(40, "40 s"), (12 * 60, "12 min"), (3 * 3600 + 20 * 60, "3 h 20 min"),
     (5 * 86400 + 2 * 3600, "5 d 2 h")],
)  # fmt: skip
def test_durations_for_people(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
