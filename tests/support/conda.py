"""Small real conda packages, and channels of them indexed by a real indexer (rattler's), served
by a `FakeUpstream` with its fault switches.

    pkg = make_package("hello", "1.0", depends=["world >=1"])
    channel = build_channel(tmp, {"noarch": [pkg, ...]}, zst=True, shards=True)
    publish(upstream, "/anaconda/cloud/conda-forge", channel)
"""

from __future__ import annotations

import asyncio
import bz2
import hashlib
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import rattler.index
import zstandard

from .upstream import FakeUpstream


@dataclass(frozen=True)
class CondaPackage:
    filename: str
    subdir: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def md5(self) -> str:
        return hashlib.md5(self.content, usedforsecurity=False).hexdigest()


def make_package(
    name: str,
    version: str,
    *,
    subdir: str = "noarch",
    depends: tuple[str, ...] = (),
    fmt: str = ".conda",
    payload: bytes = b"",
) -> CondaPackage:
    """A package that installs `share/<name>/hello.txt` (saying who it is, then `payload`)."""
    text, build = f"{name} {version}\n".encode() + payload, "0"
    relative = f"share/{name}/hello.txt"
    index = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "depends": list(depends),
        "license": "MIT",
        "subdir": subdir,
        "timestamp": 1_700_000_000_000,
        **({"noarch": "generic"} if subdir == "noarch" else {}),
    }
    paths = {
        "paths": [{"_path": relative, "path_type": "hardlink",
                   "sha256": hashlib.sha256(text).hexdigest(), "size_in_bytes": len(text)}],
        "paths_version": 1,
    }  # fmt: skip
    info = {
        "info/index.json": json.dumps(index).encode(),
        "info/paths.json": json.dumps(paths).encode(),
        "info/files": (relative + "\n").encode(),
    }
    stem = f"{name}-{version}-{build}"
    if fmt == ".tar.bz2":
        content = bz2.compress(_tar({**info, relative: text}))
    else:
        content = _conda_zip(stem, info, {relative: text})
    return CondaPackage(stem + fmt, subdir, content)


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path, data in files.items():
            member = tarfile.TarInfo(path)
            member.size, member.mtime, member.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(member, io.BytesIO(data))
    return out.getvalue()


def _conda_zip(stem: str, info: dict[str, bytes], payload: dict[str, bytes]) -> bytes:
    """A `.conda`: a stored zip of metadata.json and two zstd tarballs, info and package."""
    zstd = zstandard.ZstdCompressor()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        archive.writestr(f"pkg-{stem}.tar.zst", zstd.compress(_tar(payload)))
        archive.writestr(f"info-{stem}.tar.zst", zstd.compress(_tar(info)))
    return out.getvalue()


def build_channel(
    root: Path, packages: list[CondaPackage], *, zst: bool = False, shards: bool = False
) -> Path:
    """A channel folder of these packages (and an empty noarch), indexed by rattler: its
    repodata.json and current_repodata-less layout, with `.zst` and CEP-16 shards if asked."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "noarch").mkdir(exist_ok=True)
    for package in packages:
        (root / package.subdir).mkdir(exist_ok=True)
        (root / package.subdir / package.filename).write_bytes(package.content)
    asyncio.run(rattler.index.index_fs(root, write_zst=zst, write_shards=shards, force=True))
    return root


def publish(upstream: FakeUpstream, prefix: str, channel: Path) -> None:
    """Serve every file of the channel folder at `<prefix>/<subdir>/<file>`."""
    for path in sorted(p for p in channel.rglob("*") if p.is_file() and ".tmp" not in p.parts):
        upstream.add_blob(f"{prefix}/{path.relative_to(channel).as_posix()}", path.read_bytes())


def big_repodata(count: int, *packages: CondaPackage, subdir: str = "linux-64") -> bytes:
    """A repodata.json listing `count` made-up packages (about 360 bytes each, as conda-forge's
    are) and these real ones."""
    records = {
        f"filler{i}-1.0-h{i:06d}_0.conda": {
            "build": f"h{i:06d}_0", "build_number": 0, "depends": ["python >=3.9", "numpy"],
            "license": "BSD-3-Clause", "md5": f"{i:032x}", "name": f"filler{i}",
            "sha256": f"{i:064x}", "size": 12345 + i, "subdir": subdir,
            "timestamp": 1_700_000_000_000, "version": "1.0",
        }
        for i in range(count)
    }  # fmt: skip
    for package in packages:
        name = package.filename.split("-")[0]
        records[package.filename] = {"sha256": package.sha256, "size": len(package.content),
                                     "name": name, "subdir": subdir}  # fmt: skip
    document = {"info": {"subdir": subdir}, "packages": {}, "packages.conda": records,
                "repodata_version": 1}  # fmt: skip
    return json.dumps(document).encode()
