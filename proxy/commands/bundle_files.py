"""Reading and writing a bundle's members (see `core.bundle`): in a directory, or a tar file
when its name ends in `.tar`."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path
from types import TracebackType
from typing import IO

from ..core.bundle import MANIFEST, BadBundle


class BundleWriter:
    def __init__(self, out: Path) -> None:
        self._out = out
        self._tar = tarfile.open(out, "w") if out.suffix == ".tar" else None  # noqa: SIM115
        if self._tar is None:
            out.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tar is not None:
            self._tar.close()

    def add_bytes(self, path: str, data: bytes) -> None:
        if self._tar is not None:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            self._tar.addfile(info, io.BytesIO(data))
        else:
            target = self._out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def add_file(self, path: str, source: Path) -> None:
        if self._tar is not None:
            self._tar.add(source, arcname=path, recursive=False)
        else:
            target = self._out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


class BundleReader:
    def __init__(self, source: Path) -> None:
        self._source = source
        try:
            self._tar = tarfile.open(source) if source.is_file() else None  # noqa: SIM115
        except tarfile.TarError as exc:
            raise BadBundle(f"{source}: not a tar file ({exc})") from None
        if self._tar is None and not (source / MANIFEST).is_file():
            raise BadBundle(f"{source}: no {MANIFEST}: not a bundle")

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tar is not None:
            self._tar.close()

    def open(self, path: str) -> IO[bytes]:
        """A member's bytes (its path one `core.bundle` allows: no way out of the bundle)."""
        if self._tar is None:
            try:
                return open(self._source / path, "rb")
            except OSError as exc:
                raise BadBundle(f"{path}: missing from the bundle ({exc.strerror})") from None
        try:
            member = self._tar.getmember(path)
        except KeyError:
            raise BadBundle(f"{path}: missing from the bundle") from None
        stream = self._tar.extractfile(member) if member.isfile() else None
        if stream is None:
            raise BadBundle(f"{path}: not a plain file in the bundle")
        return stream
