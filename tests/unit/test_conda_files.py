"""Index files made ready to serve: read into the listing a record at a time, their locations
made relative in whatever compression they came, anything that is not one refused."""

from __future__ import annotations

import bz2
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
import zstandard

from proxy.core.repodata import PackageRecord
from proxy.server.conda_files import BadIndexFile, list_records, prepare, read_shard

SHA = "ab" * 32
DOCUMENT: dict[str, Any] = {
    "info": {"subdir": "linux-64"},
    "packages": {"a-1-0.tar.bz2": {"sha256": SHA, "md5": "cd" * 16, "size": 5}},
    "packages.conda": {"b-2-0.conda": {"md5": "ef" * 16}, "c-3-0.conda": {"size": 1}},
}
Codec = Callable[[bytes], bytes]
COMPRESS: dict[str, Codec] = {
    "repodata.json": lambda data: data,
    "repodata.json.zst": lambda data: zstandard.ZstdCompressor().compress(data),
    "repodata.json.bz2": bz2.compress,
}
DECOMPRESS: dict[str, Codec] = {
    "repodata.json": lambda data: data,
    "repodata.json.zst": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
    "repodata.json.bz2": bz2.decompress,
}


def _prepare(tmp_path: Path, filename: str, body: bytes, limit: int = 2**30) -> Any:
    raw = tmp_path / f".{filename}.part"
    raw.write_bytes(body)
    listed: list[PackageRecord] = []
    prepared = prepare(filename, raw, limit)
    if filename != "repodata_shards.msgpack.zst":
        assert list_records(filename, prepared.served, limit, listed.extend) == len(listed)
    return prepared, listed


@pytest.mark.parametrize("filename", sorted(COMPRESS))
def test_a_repodata_passes_byte_for_byte_and_lists_its_packages(
    tmp_path: Path, filename: str
) -> None:
    body = COMPRESS[filename](json.dumps(DOCUMENT).encode())
    prepared, listed = _prepare(tmp_path, filename, body)
    assert prepared.served.read_bytes() == body
    assert (prepared.base_url, prepared.shards_base_url) == (None, None)
    assert listed == [
        PackageRecord("a-1-0.tar.bz2", SHA, "cd" * 16, 5),
        PackageRecord("b-2-0.conda", None, "ef" * 16, None),
    ]  # c names no hash: never served


@pytest.mark.parametrize("filename", sorted(COMPRESS))
def test_locations_are_made_relative_in_the_compression_it_came_in(
    tmp_path: Path, filename: str
) -> None:
    document = {**DOCUMENT, "info": {"subdir": "linux-64", "base_url": "https://cdn.example/x/"}}
    prepared, listed = _prepare(
        tmp_path, filename, COMPRESS[filename](json.dumps(document).encode())
    )
    assert prepared.base_url == "https://cdn.example/x/"
    served = json.loads(DECOMPRESS[filename](prepared.served.read_bytes()))
    assert served == {**document, "info": {"subdir": "linux-64", "base_url": "./"}}
    assert len(listed) == 2


def test_a_shard_index_is_rewritten_only_to_make_its_locations_relative(tmp_path: Path) -> None:
    shards = {"a": bytes(32), "b": bytes([1]) * 32}
    index = {"version": 1, "info": {"base_url": "https://cdn/x/", "shards_base_url": "./shards/"},
             "shards": shards}  # fmt: skip
    body = zstandard.ZstdCompressor().compress(msgpack.packb(index))
    prepared, _ = _prepare(tmp_path, "repodata_shards.msgpack.zst", body)
    assert prepared.shards == ("00" * 32, "01" * 32)
    served = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(prepared.served.read_bytes()))
    assert served["info"] == {"base_url": "./", "shards_base_url": "./shards/"}
    plain = {**index, "info": {"shards_base_url": "./shards/"}}
    body = zstandard.ZstdCompressor().compress(msgpack.packb(plain))
    prepared, _ = _prepare(tmp_path, "repodata_shards.msgpack.zst", body)
    assert prepared.served.read_bytes() == body


def test_a_shard_lists_its_packages_with_byte_hashes(tmp_path: Path) -> None:
    shard = {"packages": {"a-1-0.tar.bz2": {"sha256": bytes.fromhex(SHA), "size": 3}},
             "packages.conda": {}, "removed": []}  # fmt: skip
    path = tmp_path / "shard"
    path.write_bytes(zstandard.ZstdCompressor().compress(msgpack.packb(shard)))
    assert read_shard(path, 2**20) == [PackageRecord("a-1-0.tar.bz2", SHA, None, 3)]
    path.write_bytes(b"not zstd")
    with pytest.raises(BadIndexFile, match="shard"):
        read_shard(path, 2**20)


@pytest.mark.parametrize(
    ("filename", "body", "message"),
    [
        ("repodata.json", b"<html>rate limited</html>", "repodata.json: "),
        ("repodata.json", b'{"error": "no such channel"}', "no info in it"),
        ("repodata.json", b'{"info": {}, "packages": {', "repodata.json: "),  # read later
        ("repodata.json.zst", b"not zstd at all", "repodata.json.zst: "),
        ("repodata.json.bz2", bz2.compress(b"{}")[:-4], "repodata.json.bz2: "),
        (
            "repodata_shards.msgpack.zst",
            zstandard.ZstdCompressor().compress(msgpack.packb([1])),
            "no shards in it",
        ),
    ],
)
def test_what_is_not_an_index_file_is_refused(
    tmp_path: Path, filename: str, body: bytes, message: str
) -> None:
    with pytest.raises(BadIndexFile, match=message):
        _prepare(tmp_path, filename, body)


def test_a_decompression_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    body = zstandard.ZstdCompressor().compress(json.dumps(DOCUMENT).encode() + b" " * 10**6)
    with pytest.raises(BadIndexFile, match=r"larger than limits\.repodata_size"):
        _prepare(tmp_path, "repodata.json.zst", body, limit=10**5)


def test_a_rewrite_that_cannot_be_finished_leaves_nothing_behind(tmp_path: Path) -> None:
    document = {**DOCUMENT, "info": {"subdir": "linux-64", "base_url": "https://cdn/x/"},
                "padding": "x" * 300_000}  # fmt: skip
    with pytest.raises(BadIndexFile, match="larger than"):
        _prepare(tmp_path, "repodata.json", json.dumps(document).encode(), limit=200_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".repodata.json.part"]
