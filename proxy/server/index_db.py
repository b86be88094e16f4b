"""What the proxy keeps beside its files, in diskcache databases: under `<cache>/index` the
upstream pages it fetched, and what downloads taught it (the sha256 of files listed without
one, the metadata hash of wheels it read); under `<cache>/listed`, when it first listed each
file the upstream gave no upload time for. Shared by every worker process and by the
cache commands; the only module that spells its keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import diskcache

from ..core.config import Upstream
from ..core.model import FileLink, NormalizedName, ProjectPage
from ..core.units import format_upload_time

Lesson = Literal["sha256", "metadata", "provenance"]
# What pages are rendered with: learning one of these renders them again.
_RENDERED: tuple[Lesson, ...] = ("sha256", "metadata")
# Moved whenever the proxy learned something: pages rendered before are rendered again.
_LESSONS = "learned"


class IndexDB:
    def __init__(self, cache_dir: Path) -> None:
        self._db = diskcache.Cache(str(cache_dir / "index"))
        # When files were first listed: facts that must never be lost, unlike a page (which
        # diskcache may cull past its size limit, and is fetched again).
        self._listed = diskcache.Cache(str(cache_dir / "listed"), eviction_policy="none")
        # Told each lesson learned here for good (see `learn`).
        self.taught: Callable[[Lesson, str, str], None] = lambda lesson, url, sha256: None

    def close(self) -> None:
        self._db.close()
        self._listed.close()

    # -- upstream pages ----------------------------------------------------------------

    @staticmethod
    def page_key(upstream: Upstream, name: NormalizedName) -> str:
        return f"page:{_identity(upstream)}:{name}"

    @staticmethod
    def root_key(upstreams: tuple[Upstream, ...]) -> str:
        return "root:" + ",".join(_identity(u) for u in upstreams)

    def entry(self, key: str) -> tuple[float, Any] | None:
        """A stored page (or index root): when it was fetched, and its value as stored."""
        stored = self._db.get(key)
        return None if stored is None else (stored["fetched"], stored["value"])

    def store_entry(self, key: str, fetched: float, value: Any) -> None:
        self._db.set(key, {"fetched": fetched, "value": value})

    def pages_of(self, upstream: Upstream) -> Iterator[ProjectPage]:
        """Every project page stored for the upstream group."""
        prefix = f"page:{_identity(upstream)}:"
        for key in self._db.iterkeys():
            if isinstance(key, str) and key.startswith(prefix):
                stored = self._db.get(key)
                if stored and stored.get("value"):
                    yield ProjectPage.from_dict(stored["value"])

    def project_pages(self) -> Iterator[dict[str, Any]]:
        """Every stored project page, as stored (`ProjectPage.to_dict`)."""
        for key in self._db.iterkeys():
            if isinstance(key, str) and key.startswith("page:"):
                stored = self._db.get(key)
                if stored and stored.get("value"):
                    yield stored["value"]

    # -- when files were first listed -------------------------------------------------

    def dated(self, upstream: Upstream, page: ProjectPage, now: float) -> ProjectPage:
        """The page with an upload time for every file: where the upstream gave none, when
        the proxy first listed the file (fixed then, by whichever process was first)."""
        with self._listed.transact():
            files = tuple(
                link
                if link.upload_time
                else dataclasses.replace(
                    link, upload_time=format_upload_time(self.listed_at(upstream, link, now))
                )
                for link in page.files
            )
        return dataclasses.replace(page, files=files)

    def listed_at(self, upstream: Upstream, link: FileLink, now: float) -> float:
        """When the proxy first listed this file of the group (`now`, if this is the first
        time)."""
        key = (upstream.name, link.filename)
        self._listed.add(key, now)
        listed: float = self._listed.get(key, now)
        return listed

    # -- lessons -------------------------------------------------------------------------

    def sha256_of(self, link: FileLink) -> str | None:
        """The file's sha256: listed, or learned when the proxy downloaded it (for a file
        that may change, until the lesson's time is up)."""
        return link.sha256 or _current(self._db.get(("sha256", link.url)))

    def metadata_sha256_of(self, link: FileLink) -> str | None:
        """The sha256 of the wheel's metadata file: advertised, or learned when the proxy
        read it out of the wheel."""
        return link.metadata_sha256 or self._db.get(("metadata", link.url))

    def learn(
        self,
        lesson: Lesson,
        url: str,
        sha256: str,
        until: float | None = None,
        *,
        share: bool = True,
    ) -> None:
        """Remembers a file's hash for good, or `until` that time (seconds since the epoch)
        for a file that may change upstream. What is learned for good is `taught` (to the
        other replicas), unless it came from them (`share=False`)."""
        self._db.set((lesson, url), sha256 if until is None else (sha256, until))
        if lesson in _RENDERED and until is None:
            self._db.incr(_LESSONS, default=0)
        if share and until is None:
            self.taught(lesson, url, sha256)

    def provenance_sha256_of(self, link: FileLink) -> str | None:
        """The sha256 of the file's provenance as the proxy fetched and kept it."""
        if link.provenance is None:
            return None
        found: str | None = self._db.get(("provenance", link.provenance))
        return found

    # -- uploads to the bucket -----------------------------------------------------------

    def upload_later(self, sha256: str) -> None:
        self._db.set(("upload", sha256), True)

    def uploaded(self, sha256: str) -> None:
        self._db.delete(("upload", sha256))

    def to_upload(self) -> list[str]:
        """The files committed but not yet in the bucket."""
        return [
            key[1] for key in self._db.iterkeys() if isinstance(key, tuple) and key[0] == "upload"
        ]

    def lessons(self) -> int:
        """How many lessons so far: a version of what pages are rendered with."""
        count: int = self._db.get(_LESSONS, 0)
        return count

    def learned(self) -> Iterator[tuple[Lesson, str, str]]:
        """Every lesson: what it is about, the file's URL upstream (its provenance's, for a
        provenance), and the sha256."""
        for key in self._db.iterkeys():
            if isinstance(key, tuple) and key[0] in ("sha256", "metadata", "provenance"):
                value = self._db.get(key)
                yield key[0], key[1], value[0] if isinstance(value, tuple) else value


def _current(lesson: str | tuple[str, float] | None) -> str | None:
    """A lesson's sha256, unless it was learned for a while and that while is over."""
    if isinstance(lesson, tuple):
        sha256, until = lesson
        return sha256 if time.time() < until else None
    return lesson


def _identity(upstream: Upstream) -> str:
    """An upstream's name and mirrors: editing its mirrors in the config is a new cache."""
    mirrors = hashlib.sha256("\n".join(upstream.mirrors).encode()).hexdigest()[:12]
    return f"{upstream.name}@{mirrors}"
