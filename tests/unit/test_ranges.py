"""Range headers, as clients send them, against a 1000-byte file."""

from __future__ import annotations

import pytest

from proxy.core.ranges import Unsatisfiable, byte_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, 1000)),  # pip resuming
        ("bytes=-10000", (0, 1000)),  # Poetry's first probe, larger than the file
        ("bytes=-16384", (0, 1000)),
        ("bytes=-100", (900, 1000)),  # uv's suffix probe
        ("bytes=990-2000", (990, 1000)),
        ("bytes=999-999", (999, 1000)),
        (" bytes = 5 - 9 ", (5, 10)),
        ("bytes=0-9,20-29", None),  # several ranges: the whole file instead
        ("items=0-9", None),
        ("bytes=9-5", None),
        ("bytes=-", None),
        ("bytes=a-b", None),
    ],
)
def test_byte_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        byte_range(header, 1000)
