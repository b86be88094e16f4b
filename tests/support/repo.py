"""Files of this repository that tests read: recorded pages of the official index, the
Dockerfile, the README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL_INDEX = ROOT / "tests" / "fixtures" / "official-index"


def dockerfile_instruction(name: str) -> str:
    """A Dockerfile instruction's arguments, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{name} (.+)$", text, re.MULTILINE)
    assert match, name
    return match[1].strip()
