"""The test wheels: deterministic, and as real as pip and uv need them."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile

from support.wheels import Dist, make_wheel


def test_wheel_is_deterministic_and_self_consistent() -> None:
    def build() -> Dist:
        return make_wheel(
            "My.Pkg",
            "2.3.1+cu121",
            requires=["dep>=1"],
            requires_python=">=3.8",
            payload_size=100_000,
        )

    dist = build()
    assert dist == build()  # same bytes every time
    assert dist.filename == "my_pkg-2.3.1+cu121-py3-none-any.whl"
    assert dist.project == "my-pkg"
    assert dist.requires_python == ">=3.8"

    with zipfile.ZipFile(io.BytesIO(dist.content)) as archive:
        info = "my_pkg-2.3.1+cu121.dist-info"
        assert archive.read(f"{info}/METADATA") == dist.metadata
        assert b"Requires-Dist: dep>=1\n" in dist.metadata
        assert b"Tag: py3-none-any" in archive.read(f"{info}/WHEEL")
        payload = archive.getinfo("my_pkg/_payload.bin")
        assert payload.file_size == 100_000 and payload.compress_type == zipfile.ZIP_STORED
        assert archive.read("my_pkg/__init__.py") == b'__version__ = "2.3.1+cu121"\n'
        for line in archive.read(f"{info}/RECORD").decode().splitlines():
            path, digest, size = line.split(",")
            if path.endswith("RECORD"):
                assert digest == size == ""
                continue
            data = archive.read(path)
            b64 = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (f"sha256={b64}", len(data))
    assert len(dist.content) > 100_000  # the padding really is incompressible


def test_dist_for_sdists() -> None:
    sdist = Dist("Foo_Bar-1.0.tar.gz", b"not a tarball", b"")
    assert sdist.project == "foo-bar" and sdist.requires_python is None
