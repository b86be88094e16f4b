"""Reading one value of the config file: each reader takes the value and its key path, and
either returns what `Config` holds or raises ConfigError naming the path."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from packaging.version import InvalidVersion, Version

from .config import ConfigError, ObjectStore
from .model import InvalidName, normalize
from .policy import Allowed
from .units import parse_duration, parse_size, parse_timestamp

Reader = Callable[[Any, str], Any]  # (value, key path) -> the value for Config
# The name of an upstream group or an index (an index's is the first segment of a path).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: expected a non-empty string, got {_kind(value)}")
    return value


def port(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"{path}: expected a port number 0-65535, got {value!r}")
    return value


def file_path(value: Any, path: str) -> Path:
    return Path(os.path.expandvars(string(value, path))).expanduser()


def _units(parse: Callable[[Any], Any]) -> Reader:
    def read(value: Any, path: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    return read


duration = _units(parse_duration)
positive_duration = _units(lambda value: parse_duration(value, positive=True))
size = _units(parse_size)
timestamp = _units(parse_timestamp)


def choice(options: tuple[str, ...]) -> Reader:
    def read(value: Any, path: str) -> str:
        if value not in options:
            raise ConfigError(f"{path}: expected one of {', '.join(options)}, got {value!r}")
        return str(value)

    return read


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: expected true or false, got {_kind(value)}")
    return value


def whole_number(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{path}: expected a whole number >= 1, got {value!r}")
    return value


def location(value: Any, path: str) -> str:
    text = string(value, path)
    if not re.fullmatch(r"/(?:[A-Za-z0-9._~-]+/)*", text):
        raise ConfigError(f"{path}: expected a URL path that starts and ends with '/': {text!r}")
    return text


def pattern(value: Any, path: str) -> str:
    text = string(value, path)
    if any(c in text for c in "*?["):
        if not re.fullmatch(r"[A-Za-z0-9._*?\[\]!-]+", text):
            raise ConfigError(f"{path}: not a project name or glob: {text!r}")
        return re.sub(r"[-_.]+", "-", text.lower())
    try:
        return normalize(text)
    except InvalidName:
        raise ConfigError(f"{path}: not a project name or glob: {text!r}") from None


def patterns(value: Any, path: str) -> tuple[str, ...]:
    return tuple(pattern(p, f"{path}[{i}]") for i, p in enumerate(sequence(value, path)))


def strings(value: Any, path: str) -> frozenset[str]:
    return frozenset(string(s, f"{path}[{i}]") for i, s in enumerate(sequence(value, path)))


def allowed(value: Any, path: str) -> tuple[Allowed, ...]:
    """Names, or `name==version`, of a break-glass list."""
    entries = []
    for i, item in enumerate(sequence(value, path)):
        text = string(item, f"{path}[{i}]")
        name, sep, version = (part.strip() for part in text.partition("=="))
        try:
            entries.append(Allowed(normalize(name), Version(version) if sep else None))
        except (InvalidName, InvalidVersion):
            raise ConfigError(f"{path}[{i}]: expected a name or name==version: {text!r}") from None
    return tuple(entries)


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def object_store(value: Any, path: str) -> ObjectStore:
    """`{url: s3://BUCKET/PREFIX, endpoint, region, credentials}`."""
    spec = mapping(value, path, {"url", "endpoint", "region", "credentials"})
    url = urlsplit(string(spec.get("url"), f"{path}.url"))
    if url.scheme != "s3" or not _BUCKET.fullmatch(url.netloc) or url.query or url.fragment:
        raise ConfigError(f"{path}.url: expected s3://BUCKET/PREFIX, got {spec['url']!r}")
    endpoint = http_url(spec["endpoint"], f"{path}.endpoint") if "endpoint" in spec else None
    region = string(spec["region"], f"{path}.region") if "region" in spec else None
    credentials = None
    if "credentials" in spec:
        credentials = file_path(spec["credentials"], f"{path}.credentials")
    prefix = url.path.strip("/")
    return ObjectStore(url.netloc, prefix, endpoint and endpoint.rstrip("/"), region, credentials)


def http_url(value: Any, path: str) -> str:
    text = string(value, path)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{path}: not an http(s) URL: {text!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{path}: an index URL takes no query or fragment: {text!r}")
    return text


def index_url(value: Any, path: str) -> str:
    text = http_url(value, path)
    # Project pages are `<index>/<name>/`: the index URL must end in a slash to join onto.
    return text if text.endswith("/") else text + "/"


# -- the shapes a value must have -------------------------------------------------------------


def mapping(value: Any, path: str, allowed: set[str] | None) -> dict[Any, Any]:
    where = path or "the top level"
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {_kind(value)}")
    if allowed is not None:
        unknown = next((key for key in value if key not in allowed), None)
        if unknown is not None:
            full = f"{path}.{unknown}" if path else str(unknown)
            expected = ", ".join(sorted(allowed))
            raise ConfigError(f"{full}: unknown key (expected one of: {expected})")
    return value


def sequence(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected a list, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"
