"""Reading a wheel's core metadata (`<name>-<version>.dist-info/METADATA`) out of the wheel."""

from __future__ import annotations

import zipfile
from typing import BinaryIO

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename


class NoMetadata(ValueError):
    """The file is not a wheel with a readable METADATA entry."""


def core_metadata(wheel: BinaryIO, filename: str) -> bytes:
    """The METADATA bytes, exactly as stored: PEP 658 asks that the `.metadata` file served
    for a wheel equals them, so clients can check one against the other."""
    try:
        name = parse_wheel_filename(filename)[0]
    except InvalidWheelFilename as exc:
        raise NoMetadata(str(exc)) from None
    try:
        with zipfile.ZipFile(wheel) as archive:
            for entry in archive.namelist():
                folder, _, leaf = entry.partition("/")
                if leaf == "METADATA" and folder.endswith(".dist-info"):
                    dist = folder.removesuffix(".dist-info").rpartition("-")[0]
                    if canonicalize_name(dist) == name:
                        return archive.read(entry)
    except (zipfile.BadZipFile, OSError, KeyError) as exc:
        raise NoMetadata(f"{filename}: {exc}") from None
    raise NoMetadata(f"{filename}: no {name} .dist-info/METADATA in the wheel")
