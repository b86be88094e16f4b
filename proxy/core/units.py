"""Sizes and durations as people read them, for the status page and the commands."""

from __future__ import annotations


def size(n: float) -> str:
    """`903 B`, `3.1 MB`, `1.2 TB` (powers of 1000, as disks are sold)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def duration(seconds: float) -> str:
    """`40 s`, `12 min`, `3 h 20 min`, `5 d 2 h`."""
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    if days >= 1:
        return f"{days:.0f} d {hours % 24:.0f} h"
    if hours >= 1:
        return f"{hours:.0f} h {minutes % 60:.0f} min"
    return f"{minutes:.0f} min" if minutes >= 1 else f"{seconds:.0f} s"
