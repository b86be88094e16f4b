"""Keeping a private mirror's credentials inside the process."""

from __future__ import annotations

import re

# `scheme://user:password@host` or `scheme://token@host`: a private mirror's credentials.
_CREDENTIALS = re.compile(r"(?<=://)(?:([^/@\s:]*):)?[^/@\s]*@")


def hide_passwords(text: str) -> str:
    """Text with the password (or token) of every URL in it masked, before it leaves the process:
    in logs, error answers, `/-/health`, the status page and metric labels."""
    return _CREDENTIALS.sub(lambda m: "***@" if m[1] is None else f"{m[1]}:***@", text)
