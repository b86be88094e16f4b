"""Log setup for `pypi-proxy serve`: plain lines, or one JSON object per line for a log
collector. Records that carry `fields` (the access log) have them as JSON keys. Either way,
a mirror's password never reaches the log."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from ..core.redact import hide_passwords

FORMATS = ("text", "json")


# Characters that would let a client's path or header start a line of its own, or move the
# terminal's cursor, in a log read as text.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        # The message only: a traceback after it keeps its lines.
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return hide_passwords(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(getattr(record, "fields", {}))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return hide_passwords(json.dumps(document, default=str))


def configure(level: str, fmt: str) -> None:
    """Everything, uvicorn's own loggers too, to stderr in one format."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # httpx logs every upstream request at info; what matters of those the proxy logs itself.
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))


# asyncio reports a failed accept (out of file descriptors) on every retry, once a second
# per listening socket; one line per minute says as much.
ACCEPT_ERRORS_EVERY = 60.0


def throttle_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Report the event loop's accept errors at most once per `ACCEPT_ERRORS_EVERY`."""
    last: float | None = None
    suppressed = 0

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal last, suppressed
        if "accept" not in str(context.get("message", "")):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if last is not None and now - last < ACCEPT_ERRORS_EVERY:
            suppressed += 1
            return
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        logging.getLogger("pypi_proxy.app").error(
            "cannot accept connections: %s%s", context.get("exception"), more
        )
        last, suppressed = now, 0

    loop.set_exception_handler(handle)
