"""What a download's readers see while it runs: bytes as they arrive, never the last one
before the file is verified, and a cut body when it fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest

from proxy.server.fill import VERIFIED_FIRST, Fill, FillFailed

pytestmark = pytest.mark.anyio
BIG = VERIFIED_FIRST + 1000  # streams as it arrives


def fill(tmp_path: Path) -> Fill:
    return Fill("x.whl", "k", tmp_path / "x.part")


def reading(f: Fill, received: bytearray) -> asyncio.Future[None]:
    """A reader of the whole file, in the background, collecting what it gets."""

    async def read() -> None:
        async for chunk in f.body():
            received.extend(chunk)

    return asyncio.ensure_future(read())


def test_the_last_byte_waits_for_the_verification(tmp_path: Path) -> None:
    f = fill(tmp_path)
    f.begin(BIG)
    f.advance(BIG)
    assert f.readable() == BIG - 1
    small = Fill("s.whl", "s", tmp_path / "s.part")
    small.begin(100)
    small.advance(100)
    assert small.readable() == 0  # a small file only once verified, whole
    unknown = Fill("u.whl", "u", tmp_path / "u.part")
    unknown.begin(None)
    unknown.advance(500)
    assert unknown.readable() == 499  # any byte may be the last


async def test_readers_get_bytes_as_they_arrive_and_the_rest_once_committed(
    tmp_path: Path,
) -> None:
    f = fill(tmp_path)
    data = bytes(range(256)) * (BIG // 256 + 1)
    data = data[:BIG]
    f.begin(BIG)
    received = bytearray()
    with anyio.fail_after(5):
        reader = reading(f, received)
        f.part.write_bytes(data[:1000])
        f.advance(1000)
        while len(received) < 1000:
            await asyncio.sleep(0.01)
        f.part.write_bytes(data)
        f.advance(BIG)
        while len(received) < BIG - 1:
            await asyncio.sleep(0.01)
        assert not reader.done()  # the last byte is held back
        committed = tmp_path / "blob"
        f.part.rename(committed)
        f.commit(committed)
        await reader
    assert bytes(received) == data and f.size == BIG
    assert await f.wait() == committed


async def test_a_failed_download_cuts_every_reader_short(tmp_path: Path) -> None:
    f = fill(tmp_path)
    f.begin(BIG)
    f.part.write_bytes(b"x" * 5000)
    f.advance(5000)
    received = bytearray()
    with anyio.fail_after(5):
        reader = reading(f, received)
        while len(received) < 5000:
            await asyncio.sleep(0.01)
        f.fail(ValueError("sha256 mismatch"))
        with pytest.raises(FillFailed, match="sha256 mismatch"):
            await reader
        with pytest.raises(FillFailed):
            await f.wait()
    assert len(received) == 5000


async def test_a_range_reads_only_its_bytes(tmp_path: Path) -> None:
    f = fill(tmp_path)
    data = bytes(range(256)) * (BIG // 256 + 1)
    f.begin(BIG)
    f.part.write_bytes(data[:BIG])
    f.advance(BIG)
    with anyio.fail_after(5):
        got = b"".join([chunk async for chunk in f.body(10, 20)])
    assert got == data[10:20]
