"""Which conda packages the cached index files list, with their hashes: what a package request
is checked against (only a listed file is ever fetched) and its download verified by.

An SQLite file in the cache, shared by the worker processes: a repodata lists hundreds of
thousands of packages, written in batches from the worker thread that reads them, and looked
up by one indexed query per request. Records are only added: a package a newer repodata no
longer lists keeps its hash, which is still what its bytes must match.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from ..core.repodata import PackageRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS package (
    channel TEXT, subdir TEXT, filename TEXT, sha256 TEXT, md5 TEXT, size INTEGER,
    PRIMARY KEY (channel, subdir, filename)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shard (
    channel TEXT, subdir TEXT, sha256 TEXT, read INTEGER DEFAULT 0,
    PRIMARY KEY (channel, subdir, sha256)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fetched (sha256 TEXT PRIMARY KEY, channel TEXT) WITHOUT ROWID;
"""


class CondaListing:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # a lost listing is fetched again
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, channel: str, subdir: str, records: Iterable[PackageRecord]) -> None:
        """List these records (in a worker thread: there may be many), in one transaction."""
        rows = ((channel, subdir, *record) for record in records)
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO package VALUES (?,?,?,?,?,?)", rows)

    def find(self, channel: str, subdir: str, filename: str) -> PackageRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT sha256, md5, size FROM package"
                " WHERE channel = ? AND subdir = ? AND filename = ?",
                (channel, subdir, filename),
            ).fetchone()
        return None if row is None else PackageRecord(filename, *row)

    def add_shards(self, channel: str, subdir: str, shards: Iterable[str]) -> None:
        """The shards a subdir's shard index names (their sha256)."""
        rows = ((channel, subdir, sha256) for sha256 in shards)
        with self._lock, self._db:
            self._db.executemany("INSERT OR IGNORE INTO shard (channel, subdir, sha256)"
                                 " VALUES (?,?,?)", rows)  # fmt: skip

    def lists(self, channel: str, subdir: str) -> bool:
        """Whether any package of the subdir is listed."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM package WHERE channel = ? AND subdir = ? LIMIT 1", (channel, subdir)
            ).fetchone()
        return row is not None

    def shard(self, channel: str, subdir: str, sha256: str) -> bool | None:
        """Whether the packages of a shard the subdir's index names are listed already;
        None for one it does not name."""
        with self._lock:
            row = self._db.execute(
                "SELECT read FROM shard WHERE channel = ? AND subdir = ? AND sha256 = ?",
                (channel, subdir, sha256),
            ).fetchone()
        return None if row is None else bool(row[0])

    def add_shard(
        self, channel: str, subdir: str, sha256: str, records: list[PackageRecord]
    ) -> None:
        """The packages of a shard, read."""
        self.add(channel, subdir, records)
        with self._lock, self._db:
            self._db.execute(
                "UPDATE shard SET read = 1 WHERE channel = ? AND subdir = ? AND sha256 = ?",
                (channel, subdir, sha256),
            )

    def served(self, sha256: str, channel: str) -> None:
        """A package of this channel was asked for (those in the cache count in `cache
        stats` as the channel's)."""
        with self._lock, self._db:
            self._db.execute("INSERT OR IGNORE INTO fetched VALUES (?, ?)", (sha256, channel))

    def served_names(self) -> dict[str, tuple[str, str]]:
        """The packages asked for, by sha256: their channel, and `<subdir>/<filename>`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT f.sha256, f.channel, p.subdir || '/' || p.filename FROM fetched f"
                " JOIN package p ON p.sha256 = f.sha256 AND p.channel = f.channel"
            ).fetchall()
        return {sha256: (channel, name) for sha256, channel, name in rows}

    def listed(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM package").fetchone()
        return int(count)
