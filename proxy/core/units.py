"""Sizes and durations: read from the config and the command line, written for people.

The parsers raise `ValueError` saying what was expected; the caller adds where the value came
from (a key path of the config, or a command-line option).
"""

from __future__ import annotations

import contextlib
import re
from datetime import date, datetime, timezone
from typing import Any

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|[smhdw]?)\s*")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
_BYTES = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip


def parse_duration(value: Any, *, positive: bool = False) -> float:
    """Seconds, from a number or a string such as `250ms`, `90s`, `10m`, `12h`, `7d`."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match[1]) * _SECONDS[match[2] or "s"]
    if seconds is None or seconds < 0 or (positive and seconds == 0):
        raise ValueError(f"expected a duration such as 30s, 10m, 250ms, got {value!r}")
    return seconds


def parse_size(value: Any) -> int:
    """Bytes, from a number or a string such as `500MB`, `200GB`, `1.5TiB`."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match and match[2].lower() in _BYTES:
            return int(float(match[1]) * _BYTES[match[2].lower()])
    raise ValueError(f"expected a size such as 500MB, 200GB, 1.5TiB, got {value!r}")


def human_size(n: float) -> str:
    """`903 B`, `3.1 MB`, `1.2 TB` (powers of 1000, as disks are sold)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def human_duration(seconds: float) -> str:
    """`40 s`, `12 min`, `3 h 20 min`, `5 d 2 h`."""
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    if days >= 1:
        return f"{days:.0f} d {hours % 24:.0f} h"
    if hours >= 1:
        return f"{hours:.0f} h {minutes % 60:.0f} min"
    return f"{minutes:.0f} min" if minutes >= 1 else f"{seconds:.0f} s"


def parse_timestamp(value: Any) -> float:
    """A POSIX timestamp from an ISO 8601 date or time (`2026-11-01`, `2026-11-01T12:00:00Z`;
    UTC unless it says otherwise), or from the `date`/`datetime` YAML makes of one unquoted."""
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):  # fromisoformat takes a Z only from Python 3.11 on
            text = text[:-1] + "+00:00"
        with contextlib.suppress(ValueError):  # then said below
            value = datetime.fromisoformat(text)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    raise ValueError(
        f"expected an ISO 8601 date or time such as 2026-11-01T00:00:00Z, got {value!r}"
    )


def upload_time(value: str | None) -> float | None:
    """A PEP 700 `upload-time` as a timestamp; None when there is none or it cannot be read."""
    if not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def format_upload_time(timestamp: float) -> str:
    """A timestamp as PEP 700 writes `upload-time`: `2026-11-01T12:00:00.000000Z`."""
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
