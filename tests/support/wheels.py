"""Build tiny, real, installable wheels in memory.

The wheels follow the binary distribution format closely enough for pip and uv to install
them: a package directory, a ``.dist-info`` directory with METADATA, WHEEL and a RECORD whose
hashes match. Every call is deterministic (fixed timestamps and permissions, seeded padding),
so the same arguments always give the same bytes and therefore the same sha256.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser

from packaging.version import Version

# Zip entries dated at the zip epoch so the archive bytes never depend on the clock.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def normalize_name(name: str) -> str:
    """PEP 503 normalized project name (``My.Pkg_x`` -> ``my-pkg-x``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Dist:
    """A distribution file: its name, its bytes and its core metadata (METADATA) bytes."""

    filename: str
    content: bytes
    metadata: bytes

    @property
    def sha256(self) -> str:
        return _sha256_hex(self.content)

    @property
    def metadata_sha256(self) -> str:
        return _sha256_hex(self.metadata)

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def project(self) -> str:
        """Normalized project name taken from the filename (wheel or ``name-ver.tar.gz``)."""
        if self.filename.endswith(".whl"):
            return normalize_name(self.filename.split("-")[0])
        return normalize_name(self.filename.rsplit("-", 1)[0])

    @property
    def requires_python(self) -> str | None:
        """The ``Requires-Python`` field of the metadata, if any."""
        if not self.metadata:
            return None
        value = BytesHeaderParser().parsebytes(self.metadata).get("Requires-Python")
        return str(value) if value is not None else None


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _metadata(
    name: str, version: str, requires: Sequence[str], requires_python: str | None
) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {req}" for req in requires]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    return ("\n".join(lines) + "\n").encode()


def make_wheel(
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    tag: str = "py3-none-any",
    payload_size: int = 0,
) -> Dist:
    """Build a wheel for ``name`` ``version`` that imports as ``<normalized_name>``.

    ``payload_size`` adds ``<pkg>/_payload.bin`` of that many incompressible (seeded random)
    bytes, stored uncompressed, so tests can make multi-MB files cheaply and predictably.
    ``version`` may carry a local label (``2.3.1+cu121``); the filename keeps the ``+``.
    """
    version = str(Version(version))  # normalized, as the wheel spec asks for filenames
    dist_name = normalize_name(name).replace("-", "_")
    package = dist_name
    dist_info = f"{dist_name}-{version}.dist-info"
    metadata = _metadata(name, version, requires, requires_python)
    wheel = (
        f"Wheel-Version: 1.0\nGenerator: pypi-proxy-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    ).encode()

    files: list[tuple[str, bytes, int]] = [
        (f"{package}/__init__.py", f'__version__ = "{version}"\n'.encode(), zipfile.ZIP_DEFLATED)
    ]
    if payload_size:
        rng = random.Random(name + version)
        # In blocks: randbytes cannot make more than 256 MiB at once.
        block = 64 * 1024 * 1024
        padding = b"".join(
            rng.randbytes(min(block, payload_size - start))
            for start in range(0, payload_size, block)
        )
        files.append((f"{package}/_payload.bin", padding, zipfile.ZIP_STORED))
    files.append((f"{dist_info}/METADATA", metadata, zipfile.ZIP_DEFLATED))
    files.append((f"{dist_info}/WHEEL", wheel, zipfile.ZIP_DEFLATED))

    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data, _ in files)
    record += f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode(), zipfile.ZIP_DEFLATED))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data, compression in files:
            info = zipfile.ZipInfo(path, date_time=_ZIP_EPOCH)
            info.compress_type = compression
            # Unix rw-r--r--, whatever the host OS, so the bytes are the same everywhere.
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)

    filename = f"{dist_name}-{version}-{tag}.whl"
    return Dist(filename=filename, content=buffer.getvalue(), metadata=metadata)


__all__ = ["Dist", "make_wheel", "normalize_name"]
