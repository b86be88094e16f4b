"""Reading back the commands' ASCII tables."""

from __future__ import annotations

import re


def cells(line: str) -> list[str]:
    """A row's cells: columns are two spaces apart at least; a cell holds single spaces only."""
    return re.split(r" {2,}", line.strip())
