"""What goes wrong upstream, as the rest of the proxy sees it: answered 503 and 404."""

from __future__ import annotations


class UpstreamError(Exception):
    """An upstream could not answer now (refused, timed out, 5xx, garbage). Transient.

    `retry_after`: seconds until a mirror will be tried again, when that is known."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFoundUpstream(Exception):
    """Every mirror asked answered that this does not exist."""
