"""Log setup for `pypi-proxy serve`: plain lines, or one JSON object per line for a log
collector. Records that carry `fields` (the access log) have them as JSON keys. Either way,
a mirror's password never reaches the log."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..core.redact import hide_passwords

FORMATS = ("text", "json")


class TextFormatter(logging.Formatter):
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
