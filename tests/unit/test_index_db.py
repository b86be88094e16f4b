"""The database beside the files: pages by upstream and name, and what downloads taught."""

from __future__ import annotations

import time
from pathlib import Path

from proxy.core.config import Upstream
from proxy.core.model import FileLink, NormalizedName
from proxy.server.index_db import IndexDB

PYPI = Upstream("pypi", ("https://a.test/simple/",))


def test_the_keys_stay_as_caches_on_disk_have_them() -> None:
    # A changed key would make every cache in the field start from nothing.
    assert IndexDB.page_key(PYPI, NormalizedName("numpy")) == "page:pypi@0ee21a4f5544:numpy"
    assert IndexDB.root_key((PYPI,)) == "root:pypi@0ee21a4f5544"
    moved = Upstream("pypi", ("https://b.test/simple/",))
    assert IndexDB.page_key(moved, NormalizedName("numpy")) != IndexDB.page_key(
        PYPI, NormalizedName("numpy")
    )  # other mirrors: another cache


def test_lessons_are_kept_and_counted(tmp_path: Path) -> None:
    db = IndexDB(tmp_path)
    try:
        link = FileLink("x-1.0-py3-none-any.whl", "https://t.test/x-1.0-py3-none-any.whl")
        assert db.sha256_of(link) is None and db.metadata_sha256_of(link) is None
        assert db.lessons() == 0
        db.learn("sha256", link.url, "aa" * 32)
        db.learn("metadata", link.url, "bb" * 32)
        assert db.sha256_of(link) == "aa" * 32 and db.metadata_sha256_of(link) == "bb" * 32
        assert db.lessons() == 2
        assert sorted(db.learned()) == [
            ("metadata", link.url, "bb" * 32),
            ("sha256", link.url, "aa" * 32),
        ]
        listed = FileLink(link.filename, link.url, sha256="cc" * 32, metadata_sha256="dd" * 32)
        assert db.sha256_of(listed) == "cc" * 32  # a listed hash wins
        assert db.metadata_sha256_of(listed) == "dd" * 32
    finally:
        db.close()


def test_pages_are_stored_and_listed(tmp_path: Path) -> None:
    db = IndexDB(tmp_path)
    try:
        key = IndexDB.page_key(PYPI, NormalizedName("x"))
        assert db.entry(key) is None
        db.store_entry(key, 123.0, {"name": "x", "files": []})
        db.store_entry(IndexDB.root_key((PYPI,)), 124.0, ["x"])
        assert db.entry(key) == (123.0, {"name": "x", "files": []})
        assert list(db.project_pages()) == [{"name": "x", "files": []}]
    finally:
        db.close()
    reopened = IndexDB(tmp_path)  # another process, or the next start
    try:
        assert reopened.entry(key) == (123.0, {"name": "x", "files": []})
    finally:
        reopened.close()


def test_first_listing_times_are_kept_apart_from_what_may_be_culled(tmp_path: Path) -> None:
    group, link = (
        Upstream("torch", ("https://t.test/",)),
        FileLink("a-1.0.tar.gz", "https://t.test/a"),
    )
    db = IndexDB(tmp_path)
    assert db.listed_at(group, link, 100.0) == 100.0
    assert db.listed_at(group, link, 200.0) == 100.0  # fixed the first time
    db._db.clear()  # everything culled that may be
    assert db.listed_at(group, link, 300.0) == 100.0
    db.close()
    again = IndexDB(tmp_path)
    assert again.listed_at(group, link, 400.0) == 100.0
    again.close()


def test_the_hash_of_a_file_that_may_change_is_kept_for_a_while(tmp_path: Path) -> None:
    db = IndexDB(tmp_path)
    try:
        fresh = FileLink("x-1.0-variants.json", "https://t.test/x-1.0-variants.json")
        stale = FileLink("y-1.0-variants.json", "https://t.test/y-1.0-variants.json")
        db.learn("sha256", fresh.url, "aa" * 32, until=time.time() + 60)
        db.learn("sha256", stale.url, "bb" * 32, until=time.time() - 1)
        assert db.sha256_of(fresh) == "aa" * 32
        assert db.sha256_of(stale) is None  # fetched again
        assert db.lessons() == 0  # pages do not list these hashes: nothing to render again
        assert sorted(db.learned()) == [("sha256", fresh.url, "aa" * 32),
                                        ("sha256", stale.url, "bb" * 32)]  # fmt: skip
    finally:
        db.close()
