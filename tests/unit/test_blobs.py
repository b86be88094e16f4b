"""The content-addressed store: what goes in under which name, and what goes out first when
the cache is over its limits (least recently used by mtime, which tests set directly)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from proxy.server.blobs import BlobStore
from proxy.server.locks import FileLocks


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored(store: BlobStore, data: bytes, used: float | None = None) -> Path:
    """A verified file in the store, last used at `used` (a time stamp)."""
    path = store.put(data, sha(data))
    if used is not None:
        os.utime(path, (used, used))
    return path


def test_a_committed_part_is_found_under_its_sha256(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = b"wheel bytes"
    key = sha(b"the url")  # a file listed without a hash downloads under its URL's digest
    store.part(key).write_bytes(data)
    store.write_size(key, len(data))
    assert store.read_size(key) == len(data) and store.part_size(key) == len(data)
    path = store.commit(key, sha(data))
    assert path == tmp_path / "files" / sha(data)[:2] / sha(data)[2:4] / sha(data)
    assert path.read_bytes() == data and store.find(sha(data)) == path
    assert not store.part(key).exists() and store.read_size(key) is False
    assert store.totals() == (1, len(data))
    assert store.find(None) is None and store.find("0" * 64) is None


def test_use_marks_a_file_as_just_used(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    path = stored(store, b"x", used=1000.0)
    before = time.time()
    assert store.use(sha(b"x")) == path
    assert path.stat().st_mtime >= before - 1
    assert store.use("0" * 64) is None


def test_eviction_removes_the_least_recently_used_first(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_size=25, min_free=0)
    old, middle, new = (
        stored(store, bytes([n]) * 10, used=t) for n, t in ((1, 100), (2, 200), (3, 300))
    )
    assert not store.has_room(0)  # 30 bytes against a limit of 25
    assert store.evict() == 10
    assert not old.exists() and middle.exists() and new.exists()
    assert store.totals() == (2, 20)
    assert store.make_room(10) and not middle.exists()  # room for 10 more: the next oldest goes
    assert not store.make_room(26)  # larger than the whole cache may be


def test_eviction_keeps_the_file_being_committed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_size=15, min_free=0)
    keep = stored(store, b"a" * 10, used=100)
    other = stored(store, b"b" * 10, used=200)
    store.evict(0, keep=keep)
    assert keep.exists() and not other.exists()


def test_prune_by_last_use(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, min_free=0)
    old = stored(store, b"old", used=time.time() - 40 * 86400)
    recent = stored(store, b"recent", used=time.time() - 86400)
    assert store.evict(used_before=time.time() - 30 * 86400) == 3
    assert not old.exists() and recent.exists()


def test_a_disk_reserve_larger_than_the_disk_leaves_no_room(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, min_free=10**18)
    assert not store.has_room(0) and not store.make_room(1)


def test_verify_finds_a_changed_byte(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    path = stored(store, b"good bytes")
    assert store.verify(path) is True
    path.write_bytes(b"bad! bytes")
    assert store.verify(path) is False
    path.unlink()
    assert store.verify(path) is None


@pytest.mark.parametrize("name", ["../../etc/passwd", "A" * 64, "a" * 63, "", "a" * 64 + "/x"])
def test_no_other_name_becomes_a_path(tmp_path: Path, name: str) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(ValueError, match="not a sha256"):
        store.path(name)
    with pytest.raises(ValueError, match="not a sha256"):
        store.part(name)


def test_clean_removes_what_interrupted_downloads_left(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    key = sha(b"k")
    store.part(key).write_bytes(b"half")
    store.write_size(key, 8)
    store.write_prefix(key, 2)
    stale_put = store.tmp / "x.put"
    stale_put.write_bytes(b"old")
    os.utime(stale_put, (time.time() - 3600, time.time() - 3600))
    fresh_put = store.tmp / "y.put"  # another process is writing it right now
    fresh_put.write_bytes(b"new")
    locks = FileLocks(tmp_path / "locks")
    try:
        assert store.clean(locks) == 1
    finally:
        locks.close()
    assert sorted(p.name for p in store.tmp.iterdir()) == ["y.put"]


def test_a_segmented_part_is_followed_and_taken_over_by_its_noted_prefix(
    tmp_path: Path,
) -> None:
    store = BlobStore(tmp_path)
    key = sha(b"segmented")
    with open(store.part(key), "wb") as part:  # ranges written ahead, at their offsets
        part.write(b"0123")
        part.seek(100)
        part.write(b"far ahead")
    store.write_prefix(key, 4)
    assert store.part_size(key) == 4  # what followers may read, not the file's length
    store.settle_part(key)  # the writer died: whoever takes over finds only the prefix
    assert store.part(key).read_bytes() == b"0123" and store.part_size(key) == 4
    store.settle_part(key)  # nothing noted any more: nothing to do
    assert store.part(key).read_bytes() == b"0123"
    store.write_prefix(key, 4)
    store.discard_part(key)
    assert list(store.tmp.iterdir()) == []


def test_no_file_is_evicted_for_one_that_could_never_fit(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_size=3000)
    kept = [stored(store, bytes([n]) * 1000, used=1000 + n) for n in range(3)]
    assert store.make_room(3001) is False  # larger than the limit: evicting all would not do
    assert store.make_room(10**18) is False  # larger than the disk
    assert all(p.exists() for p in kept)
    assert store.make_room(1500) is True  # fits once two files go: the oldest two go
    assert [p.exists() for p in kept] == [False, False, True]
