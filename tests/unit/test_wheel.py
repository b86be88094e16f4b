"""A wheel's METADATA read out of it: from the whole file, or from only the pieces that
`zipfile` asks for (its end: the central directory and the METADATA entry)."""

from __future__ import annotations

import io
import zipfile

import pytest
from support.wheels import make_wheel

from proxy.core.wheel import Missing, NoMetadata, SparseFile, core_metadata

WHEEL = make_wheel("Some_Project", "2.0+cu121", requires=["dep>=1"], payload_size=3_000_000)


def test_metadata_from_a_whole_wheel() -> None:
    assert core_metadata(io.BytesIO(WHEEL.content), WHEEL.filename) == WHEEL.metadata


def test_metadata_from_pieces_asks_only_for_the_end() -> None:
    size = len(WHEEL.content)
    sparse = SparseFile(size)
    asked = []
    while True:
        try:
            metadata = core_metadata(sparse, WHEEL.filename)
            break
        except Missing as need:
            asked.append((need.start, need.end))
            start = min(need.start, size - 65536)  # fetch generously, as the proxy does
            sparse.add(start, WHEEL.content[start : max(need.end, start + 65536)])
    assert metadata == WHEEL.metadata
    assert len(asked) <= 3
    assert all(start > size - 100_000 for start, _ in asked)  # never the 3 MB before


def test_not_a_wheel() -> None:
    with pytest.raises(NoMetadata):
        core_metadata(io.BytesIO(b"not a zip at all" * 100), WHEEL.filename)
    with pytest.raises(NoMetadata):
        core_metadata(io.BytesIO(WHEEL.content), "other_project-1.0-py3-none-any.whl")
    with pytest.raises(NoMetadata):
        core_metadata(io.BytesIO(WHEEL.content), "not-a-wheel-name.tar.gz")


def test_metadata_larger_than_the_limit_is_refused_however_well_it_packs() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "demo-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\n" + b" " * 5_000_000
        )
    assert len(buffer.getvalue()) < 50_000  # five megabytes of spaces pack into a few KB
    with pytest.raises(NoMetadata, match="larger than 1,000,000 bytes"):
        core_metadata(buffer, "demo-1.0-py3-none-any.whl", limit=1_000_000)
    assert len(core_metadata(buffer, "demo-1.0-py3-none-any.whl", limit=6_000_000)) > 5_000_000


def test_a_wheel_whose_metadata_does_not_inflate_has_no_metadata() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("demo-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\n" * 200)
    data = bytearray(buffer.getvalue())
    start = data.index(b"METADATA") + len("METADATA")  # the entry's deflated bytes follow
    data[start : start + 40] = b"\xff" * 40
    with pytest.raises(NoMetadata):
        core_metadata(io.BytesIO(bytes(data)), "demo-1.0-py3-none-any.whl")
