"""A content-addressed file store: `files/<aa>/<bb>/<sha256>`, written through `tmp/*.part`.

No client string ever becomes a path here: the only key is a sha256 the proxy computed or
parsed and validated. A file appears under its final name only after its bytes were verified,
by one atomic rename, so a reader never sees a partial or corrupt file.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

_SHA256 = re.compile(r"[0-9a-f]{64}")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.files = root / "files"
        self.tmp = root / "tmp"
        self.files.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.files / sha256[:2] / sha256[2:4] / sha256

    def find(self, sha256: str | None) -> Path | None:
        if sha256 is None:
            return None
        path = self.path(sha256)
        return path if path.is_file() else None

    def new_part(self) -> Path:
        return self.tmp / f"{uuid.uuid4().hex}.part"

    def commit(self, part: Path, sha256: str) -> Path:
        """Move a verified, fsynced part file to its final name."""
        final = self.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        # On Windows a rename fails while another handle is open on the file; readers hold
        # one only for the length of a read, so a short retry is enough.
        for attempt in range(50):
            try:
                os.replace(part, final)
                return final
            except PermissionError:
                if attempt == 49:
                    raise
                time.sleep(0.02)
        return final

    def put(self, data: bytes, sha256: str) -> Path:
        """Store a small verified body (a `.metadata` file) in one go."""
        part = self.new_part()
        with open(part, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return self.commit(part, sha256)

    def clean_parts(self) -> int:
        """Remove what interrupted downloads left behind; run at start, before any fill."""
        removed = 0
        for part in self.tmp.glob("*.part"):
            part.unlink(missing_ok=True)
            removed += 1
        return removed
