"""The object-store tier: an S3-compatible bucket (SeaweedFS, Garage, MinIO, S3 itself) under
the local cache, shared by every replica, through `obstore`.

Objects hold a file's raw bytes under `<prefix>/files/<aa>/<bb>/<sha256>`. One PUT writes
each (a multipart upload for a big one, which S3 shows only once it is complete), so no
partial object is ever visible under a content address. Reads do not come through here: a
presigned URL makes the object one more source of the file (see
`UpstreamClient.file_sources`), fetched by the upstream HTTP client with Range, timeouts,
resumes and the verification every download gets.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
import obstore.exceptions
from obstore.store import S3Store

from ..core.config import Config, ObjectStore

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

log = logging.getLogger("pypi_proxy.bucket")

# A presigned URL outlives any one download's first request by far, and is made anew for
# each download: its lifetime bounds nothing else.
SIGNED_FOR = timedelta(hours=1)


class Bucket:
    def __init__(self, spec: ObjectStore, config: Config) -> None:
        self.spec = spec
        client: ClientConfig = {
            "connect_timeout": timedelta(seconds=config.connect_timeout),
            # One request: a HEAD, or one part of an upload.
            "timeout": timedelta(seconds=config.first_byte_timeout + config.stall_timeout),
            "allow_http": bool(spec.endpoint and spec.endpoint.startswith("http://")),
        }
        # A bucket that is down is the proxy's to notice and retry later, not obstore's.
        retry: RetryConfig = {"max_retries": 1, "retry_timeout": timedelta(seconds=5)}
        options: dict[str, Any] = _credentials(spec.credentials)
        if spec.endpoint:
            options["endpoint"] = spec.endpoint
        if spec.region:
            options["region"] = spec.region
        self._store = S3Store(spec.bucket, prefix=spec.prefix or None, client_options=client,
                              retry_config=retry, **options)  # fmt: skip

    @staticmethod
    def key(sha256: str) -> str:
        return f"files/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def signed_url(self, sha256: str) -> str:
        """A URL that GETs the object (with Range) without credentials, for a while."""
        return obstore.sign(self._store, "GET", self.key(sha256), SIGNED_FOR)

    async def has(self, sha256: str) -> bool:
        try:
            await obstore.head_async(self._store, self.key(sha256))
        except FileNotFoundError:
            return False
        return True

    async def upload(self, path: Path, sha256: str) -> None:
        await obstore.put_async(self._store, self.key(sha256), path)

    async def delete(self, sha256: str) -> None:
        await obstore.delete_async(self._store, self.key(sha256))

    async def discard(self, sha256: str, filename: str) -> None:
        """Delete an object whose bytes do not match its name (best effort: one left behind
        is found again by the next download's verification, or by `cache verify`)."""
        log.warning("the object store's copy of %s is corrupt: deleting it", filename)
        try:
            await self.delete(sha256)
        except (obstore.exceptions.BaseError, OSError) as exc:
            log.warning("could not delete %s from the object store: %s", sha256, exc)

    def objects(self) -> Iterator[tuple[str, int]]:
        """Every file in the bucket: its sha256 (the name it is under) and size."""
        for chunk in obstore.list(self._store, "files/"):
            for meta in chunk:
                yield meta["path"].rsplit("/", 1)[-1], meta["size"]

    def matches(self, sha256: str) -> bool | None:
        """Whether an object still has the sha256 it is named by (None: gone meanwhile).
        Read as a stream: it may be gigabytes."""
        digest = hashlib.sha256()
        try:
            for chunk in obstore.get(self._store, self.key(sha256)).stream(2**20):
                digest.update(chunk)
        except FileNotFoundError:
            return None
        return digest.hexdigest() == sha256

    # -- what replicas learned: a file's hash, a wheel's metadata hash, by upstream URL ------

    @staticmethod
    def lesson_key(lesson: str, url: str) -> str:
        return f"lessons/{lesson}/{hashlib.sha256(url.encode()).hexdigest()}"

    async def teach(self, lesson: str, url: str, sha256: str) -> None:
        body = json.dumps({"lesson": lesson, "url": url, "sha256": sha256}).encode()
        await obstore.put_async(self._store, self.lesson_key(lesson, url), body)

    async def lesson_keys(self) -> list[str]:
        """Every lesson in the bucket, by key."""
        return [meta["path"] async for chunk in obstore.list(self._store, "lessons/")
                for meta in chunk]  # fmt: skip

    async def lesson(self, key: str) -> tuple[str, str, str] | None:
        """A lesson's kind, upstream URL and sha256; None if it is not one (not ours)."""
        body = await (await obstore.get_async(self._store, key)).bytes_async()
        try:
            found = json.loads(bytes(body))
            lesson, url, sha256 = found["lesson"], found["url"], found["sha256"]
        except (ValueError, KeyError, TypeError):
            return None
        valid = self.lesson_key(lesson, url) == key and re.fullmatch(r"[0-9a-f]{64}", sha256)
        return (lesson, url, sha256) if valid else None

    def remove(self, sha256: str) -> None:
        obstore.delete(self._store, self.key(sha256))


def _credentials(path: Path | None) -> dict[str, str]:
    """The keys of an AWS credentials file's profile (`AWS_PROFILE`, else `default`); none
    without a file, when obstore reads `AWS_ACCESS_KEY_ID` and the rest from the environment."""
    if path is None:
        return {}
    parser = configparser.ConfigParser()
    try:
        with open(path, encoding="utf-8") as file:
            parser.read_file(file)
    except (OSError, configparser.Error) as exc:
        raise ValueError(f"cache.store.credentials: {path}: {exc}") from None
    profile = os.environ.get("AWS_PROFILE", "default")
    if not parser.has_section(profile):
        raise ValueError(f"cache.store.credentials: {path} has no [{profile}] profile")
    section = parser[profile]
    keys = {"access_key_id": "aws_access_key_id", "secret_access_key": "aws_secret_access_key",
            "session_token": "aws_session_token"}  # fmt: skip
    return {ours: section[theirs] for ours, theirs in keys.items() if theirs in section}
