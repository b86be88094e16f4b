"""Uploads to a hosted group, at `/upload/<group>/`: the upload API that `twine upload`,
`uv publish` and `poetry publish` speak (a multipart form with `:action=file_upload`, the
file as `content`, its digests, and the project's name and version), with the token as the
password of HTTP Basic (user `__token__`).

An upload is written beside the group's folder and checked against every digest the client
sent, and a wheel's metadata against its filename, before it appears under its name by one
link (which fails if that name exists: nothing is ever overwritten). The same filename with
the same bytes again is answered as done; with other bytes it is a 409.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import uuid
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Protocol

import anyio
from packaging.version import InvalidVersion, Version
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..core.config import Upstream
from ..core.model import InvalidName, name_and_version, normalize
from ..core.parse_values import is_plain_filename
from ..core.wheel import NoMetadata, core_metadata
from .blobs import file_sha256
from .local_folders import folders
from .services import services_of

CHUNK = 1024 * 1024


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


_DIGESTS = {"sha256_digest": "sha256", "md5_digest": "md5", "blake2_256_digest": "blake2b"}


async def upload(request: Request) -> Response:
    services = services_of(request)
    group = _group(services.config.upstreams, request.path_params["group"])
    _authorize(request, group)
    form = await request.form(max_files=1, max_fields=64)
    if form.get(":action") != "file_upload":
        raise HTTPException(400, ":action: expected file_upload")
    content = form.get("content")
    if not isinstance(content, UploadFile) or not content.filename:
        raise HTTPException(400, "content: no file in the upload")
    filename = content.filename
    _check_name(filename, str(form.get("name", "")), str(form.get("version", "")))
    digests = {
        kind: str(form[field]).lower() for field, kind in _DIGESTS.items() if form.get(field)
    }
    folder = folders(services.config)[group.mirrors[0]]
    outcome = await anyio.to_thread.run_sync(_store, content, folder, filename, digests)
    return PlainTextResponse(f"{outcome}\n")


def _group(upstreams: tuple[Upstream, ...], name: str) -> Upstream:
    group = next((u for u in upstreams if u.name == name and u.hosted is not None), None)
    if group is None:
        raise HTTPException(404, f"no hosted group named {name!r} takes uploads")
    return group


def _authorize(request: Request, group: Upstream) -> None:
    """401 without a token (asking for one), 403 with a wrong one."""
    assert group.hosted is not None
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        challenge = {"WWW-Authenticate": 'Basic realm="pypi-proxy uploads"'}
        raise HTTPException(401, "a token is needed to upload (user __token__)", challenge)
    try:
        _, _, token = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise HTTPException(401, "Authorization: not HTTP Basic credentials") from None
    allowed = list(group.hosted.tokens)
    if group.hosted.tokens_env:
        allowed += [t.strip() for t in os.environ.get(group.hosted.tokens_env, "").split(",")]
    if not any(t and hmac.compare_digest(token.encode(), t.encode()) for t in allowed):
        raise HTTPException(403, f"this token may not upload to {group.name}")


def _check_name(filename: str, name: str, version: str) -> None:
    """The filename is a distribution's, and names the project and version the form does."""
    if not is_plain_filename(filename) or name_and_version(filename) is None:
        raise HTTPException(400, f"{filename!r}: not a wheel's or an sdist's filename")
    if not _names(filename, name, version):
        raise HTTPException(400, f"{filename} is not {name} {version}, as the upload says")


def _names(filename: str, name: str, version: str) -> bool:
    """Whether a distribution's filename names this project and version."""
    parsed = name_and_version(filename)
    try:
        return parsed is not None and (normalize(name), Version(version)) == parsed
    except (InvalidName, InvalidVersion):
        return False


def _store(content: UploadFile, folder: Path, filename: str, expected: dict[str, str]) -> str:
    """Write the upload beside the folder, check it, then give it its name (in a thread)."""
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / f".upload-{uuid.uuid4().hex}"
    try:
        sha256 = _written(content, scratch, expected)
        if filename.endswith(".whl"):
            _check_metadata(scratch, filename)
        target = folder / filename
        try:
            os.link(scratch, target)  # fails if the name is taken: nothing is overwritten
        except FileExistsError:
            if file_sha256(target) != sha256:
                raise HTTPException(409, f"{filename} exists with other bytes") from None
            return f"{filename} was uploaded already, with these bytes"
        return f"uploaded {filename} (sha256 {sha256})"
    finally:
        scratch.unlink(missing_ok=True)


def _written(content: UploadFile, scratch: Path, expected: dict[str, str]) -> str:
    """Copy the upload to `scratch`, checking the digests the client sent; its sha256."""
    hashes: dict[str, _Digest] = {
        "sha256": hashlib.sha256(),
        "md5": hashlib.md5(usedforsecurity=False),
        "blake2b": hashlib.blake2b(digest_size=32),
    }
    content.file.seek(0)
    with open(scratch, "wb") as out:
        while chunk := content.file.read(CHUNK):
            out.write(chunk)
            for digest in hashes.values():
                digest.update(chunk)
        out.flush()
        os.fsync(out.fileno())
    for kind, value in expected.items():
        if hashes[kind].hexdigest() != value:
            raise HTTPException(
                400, f"{kind} of the upload is {hashes[kind].hexdigest()}, not {value}"
            )
    return hashes["sha256"].hexdigest()


def _check_metadata(path: Path, filename: str) -> None:
    """A wheel's METADATA names the project and version its filename does."""
    try:
        with open(path, "rb") as wheel:
            headers = BytesHeaderParser().parsebytes(core_metadata(wheel, filename))
    except NoMetadata as exc:
        raise HTTPException(400, f"{filename}: no readable metadata ({exc})") from None
    parsed = name_and_version(filename)
    assert parsed is not None
    try:
        same = (
            normalize(headers.get("Name", "")) == parsed[0]
            and Version(headers.get("Version", "")) == parsed[1]
        )
    except (InvalidName, InvalidVersion):
        same = False
    if not same:
        raise HTTPException(
            400, f"{filename}: its metadata names {headers.get('Name')} {headers.get('Version')}"
        )
