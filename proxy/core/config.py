"""The YAML configuration, validated into frozen dataclasses.

Every error names the key path it is about (`upstreams.pytorch.mirrors[0]: ...`), so a typo
stops the server with a message that says where to look.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .model import InvalidName, NormalizedName, normalize


class ConfigError(ValueError):
    """A configuration that cannot be served; the message names the offending key path."""


@dataclass(frozen=True)
class Upstream:
    """A group of interchangeable mirrors of one index, tried in order. A mirror is a simple
    index (`<url><project>/`), or, if listed in `flat`, one page of links to every file
    (a find-links listing, as some national mirrors of the PyTorch index are)."""

    name: str
    mirrors: tuple[str, ...]
    flat: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Route:
    """Projects matching any pattern are looked up in these upstreams. With the `first`
    strategy the first one that has the project serves all its files (so a name routed to
    the PyTorch index never takes files from elsewhere); with `union`, files are merged, the
    earlier upstream winning on a filename."""

    patterns: tuple[str, ...]
    upstreams: tuple[str, ...]
    strategy: str = "first"

    def matches(self, name: NormalizedName) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.patterns)


@dataclass(frozen=True)
class Index:
    """A client-facing index, at `/<name>/simple/` (the default one at `/simple/` too),
    with its own routes: a profile such as `cu118` or `cpu`."""

    name: str
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class Circuit:
    """When a failing mirror is skipped, and how often it is probed again."""

    failures: int = 3
    probe_interval: float = 5.0
    max_probe_interval: float = 300.0


@dataclass(frozen=True)
class Config:
    upstreams: tuple[Upstream, ...]
    indexes: tuple[Index, ...]  # the first is the default, also at /simple/
    host: str = "0.0.0.0"
    port: int = 3141
    cache_dir: Path = field(default_factory=lambda: Path("pypi-proxy-cache"))
    page_ttl: float = 600.0
    stale_while_revalidate: float = 86400.0
    stale_if_error: float = 7 * 86400.0
    max_size: int | None = None  # bytes of files kept; None: no limit but the disk's
    min_free: int = 1_000_000_000  # bytes always left free on the cache's disk
    connect_timeout: float = 10.0
    first_byte_timeout: float = 30.0
    stall_timeout: float = 60.0
    ca_bundle: Path | None = None
    circuit: Circuit = field(default_factory=Circuit)
    # With nginx in front: cache hits answered by this internal location (sendfile).
    x_accel_redirect: str | None = None

    def upstream(self, name: str) -> Upstream:
        return next(u for u in self.upstreams if u.name == name)

    def index(self, name: str | None = None) -> Index:
        """The index of this name (None: the default one); ConfigError naming those there are."""
        if name is None:
            return self.indexes[0]
        found = next((i for i in self.indexes if i.name == name), None)
        if found is None:
            known = ", ".join(i.name for i in self.indexes)
            raise ConfigError(f"no index named {name!r} (known: {known})")
        return found


def default_config_path() -> Path:
    """The bundled config: inside the installed package, or `config/` in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "default-config.yaml"
    if packaged.exists():
        return packaged
    return package.parent / "config" / "pypi-proxy.yaml"


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data)


def parse_config(data: Any) -> Config:
    root = _mapping(
        data,
        "",
        {
            "listen", "cache", "timeouts", "circuit", "tls", "offload",
            "upstreams", "routes", "indexes",
        },
    )  # fmt: skip
    listen = _mapping(root.get("listen", {}), "listen", {"host", "port"})
    cache = _mapping(
        root.get("cache", {}),
        "cache",
        {"dir", "page_ttl", "stale_while_revalidate", "stale_if_error", "max_size", "min_free"},
    )
    timeouts = _mapping(root.get("timeouts", {}), "timeouts", {"connect", "first_byte", "stall"})
    tls = _mapping(root.get("tls", {}), "tls", {"ca_bundle"})
    circuit = _mapping(
        root.get("circuit", {}), "circuit", {"failures", "probe_interval", "max_probe_interval"}
    )
    offload = _mapping(root.get("offload", {}), "offload", {"x_accel_redirect"})

    upstreams = _upstreams(root.get("upstreams"))
    names = [u.name for u in upstreams]
    if "indexes" in root:
        if "routes" in root:
            raise ConfigError("routes: with indexes, each index has its own routes")
        indexes = _indexes(root["indexes"], names)
    elif "routes" in root:
        indexes = (Index("default", _routes(root["routes"], names, "routes")),)
    else:
        indexes = (Index("default", (Route(patterns=("*",), upstreams=tuple(names)),)),)
    defaults = Config(upstreams=(), indexes=())
    return Config(
        upstreams=upstreams,
        indexes=indexes,
        host=_string(listen.get("host", defaults.host), "listen.host"),
        port=_port(listen.get("port", defaults.port), "listen.port"),
        cache_dir=_path(cache.get("dir", str(defaults.cache_dir)), "cache.dir"),
        page_ttl=parse_duration(cache.get("page_ttl", defaults.page_ttl), "cache.page_ttl"),
        stale_while_revalidate=parse_duration(
            cache.get("stale_while_revalidate", defaults.stale_while_revalidate),
            "cache.stale_while_revalidate",
        ),
        stale_if_error=parse_duration(
            cache.get("stale_if_error", defaults.stale_if_error), "cache.stale_if_error"
        ),
        max_size=parse_size(cache["max_size"], "cache.max_size") if "max_size" in cache else None,
        min_free=parse_size(cache.get("min_free", defaults.min_free), "cache.min_free"),
        connect_timeout=parse_duration(
            timeouts.get("connect", defaults.connect_timeout), "timeouts.connect", positive=True
        ),
        first_byte_timeout=parse_duration(
            timeouts.get("first_byte", defaults.first_byte_timeout),
            "timeouts.first_byte",
            positive=True,
        ),
        stall_timeout=parse_duration(
            timeouts.get("stall", defaults.stall_timeout), "timeouts.stall", positive=True
        ),
        ca_bundle=_path(tls["ca_bundle"], "tls.ca_bundle") if "ca_bundle" in tls else None,
        circuit=_circuit(circuit),
        x_accel_redirect=_location(offload["x_accel_redirect"], "offload.x_accel_redirect")
        if "x_accel_redirect" in offload
        else None,
    )


def _location(value: Any, path: str) -> str:
    text = _string(value, path)
    if not re.fullmatch(r"/(?:[A-Za-z0-9._~-]+/)*", text):
        raise ConfigError(f"{path}: expected a URL path that starts and ends with '/': {text!r}")
    return text


def _circuit(spec: dict[str, Any]) -> Circuit:
    default = Circuit()
    failures = spec.get("failures", default.failures)
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
        raise ConfigError(f"circuit.failures: expected a whole number >= 1, got {failures!r}")
    probe = parse_duration(
        spec.get("probe_interval", default.probe_interval), "circuit.probe_interval", positive=True
    )
    cap = parse_duration(
        spec.get("max_probe_interval", default.max_probe_interval),
        "circuit.max_probe_interval",
        positive=True,
    )
    if cap < probe:
        raise ConfigError("circuit.max_probe_interval: shorter than circuit.probe_interval")
    return Circuit(failures=failures, probe_interval=probe, max_probe_interval=cap)


def _upstreams(value: Any) -> tuple[Upstream, ...]:
    if value is None:
        raise ConfigError("upstreams: missing; name at least one upstream with its mirrors")
    groups = _mapping(value, "upstreams", None)
    if not groups:
        raise ConfigError("upstreams: empty; name at least one upstream with its mirrors")
    result = []
    for name, body in groups.items():
        path = f"upstreams.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ConfigError(f"{path}: upstream names are letters, digits, '.', '_' and '-'")
        spec = _mapping(body, path, {"mirrors"})
        mirrors = _list(spec.get("mirrors"), f"{path}.mirrors")
        if not mirrors:
            raise ConfigError(f"{path}.mirrors: needs at least one URL")
        urls, flat = [], set()
        for i, mirror in enumerate(mirrors):
            where = f"{path}.mirrors[{i}]"
            if isinstance(mirror, dict):
                spec = _mapping(mirror, where, {"url", "kind"})
                kind = spec.get("kind", "simple")
                if kind not in ("simple", "flat"):
                    raise ConfigError(f"{where}.kind: expected simple or flat, got {kind!r}")
                if kind == "flat":
                    urls.append(_url(spec.get("url"), f"{where}.url"))
                    flat.add(urls[-1])
                    continue
                mirror = spec.get("url")
                where += ".url"
            urls.append(_index_url(mirror, where))
        result.append(Upstream(name=name, mirrors=tuple(urls), flat=frozenset(flat)))
    return tuple(result)


STRATEGIES = ("first", "union")
# Index names are the first segment of a path; these are taken.
_RESERVED = {"simple", "files", "-", "metrics"}


def _indexes(value: Any, known: list[str]) -> tuple[Index, ...]:
    specs = _mapping(value, "indexes", None)
    if not specs:
        raise ConfigError("indexes: empty; name at least one index with its routes")
    indexes, default = [], None
    for name, body in specs.items():
        path = f"indexes.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ConfigError(f"{path}: index names are letters, digits, '.', '_' and '-'")
        if name in _RESERVED:
            raise ConfigError(f"{path}: {name!r} is taken by the proxy's own paths")
        spec = _mapping(body, path, {"routes", "default"})
        if "routes" not in spec:
            raise ConfigError(f"{path}.routes: missing")
        index = Index(name, _routes(spec["routes"], known, f"{path}.routes"))
        if spec.get("default", False) is True:
            if default is not None:
                raise ConfigError(f"{path}.default: {default.name!r} is the default already")
            default = index
        elif spec.get("default", False) is not False:
            raise ConfigError(f"{path}.default: expected true or false")
        indexes.append(index)
    if default is not None:  # the default first
        indexes.remove(default)
        indexes.insert(0, default)
    return tuple(indexes)


def _routes(value: Any, known: list[str], where: str) -> tuple[Route, ...]:
    routes = []
    for i, item in enumerate(_list(value, where)):
        path = f"{where}[{i}]"
        spec = _mapping(item, path, {"projects", "upstreams", "strategy"})
        for key in ("projects", "upstreams"):
            if key not in spec:
                raise ConfigError(f"{path}.{key}: missing")
        patterns = tuple(
            _pattern(p, f"{path}.projects[{j}]")
            for j, p in enumerate(_list(spec["projects"], f"{path}.projects"))
        )
        targets = _list(spec["upstreams"], f"{path}.upstreams")
        if not patterns or not targets:
            raise ConfigError(f"{path}: needs at least one project and one upstream")
        for j, target in enumerate(targets):
            if target not in known:
                raise ConfigError(
                    f"{path}.upstreams[{j}]: unknown upstream {target!r} "
                    f"(known: {', '.join(known)})"
                )
        strategy = spec.get("strategy", "first")
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"{path}.strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}"
            )
        routes.append(Route(patterns=patterns, upstreams=tuple(targets), strategy=strategy))
    if not routes:
        raise ConfigError(f"{where}: empty; needs at least one route")
    return tuple(routes)


def _pattern(value: Any, path: str) -> str:
    text = _string(value, path)
    if any(c in text for c in "*?["):
        if not re.fullmatch(r"[A-Za-z0-9._*?\[\]!-]+", text):
            raise ConfigError(f"{path}: not a project name or glob: {text!r}")
        return re.sub(r"[-_.]+", "-", text.lower())
    try:
        return normalize(text)
    except InvalidName:
        raise ConfigError(f"{path}: not a project name or glob: {text!r}") from None


def _url(value: Any, path: str) -> str:
    url = _string(value, path)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{path}: not an http(s) URL: {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{path}: an index URL takes no query or fragment: {url!r}")
    return url


def _index_url(value: Any, path: str) -> str:
    url = _url(value, path)
    # Project pages are `<index>/<name>/`: the index URL must end in a slash to join onto.
    return url if url.endswith("/") else url + "/"


def _mapping(value: Any, path: str, allowed: set[str] | None) -> dict[Any, Any]:
    where = path or "the top level"
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {_kind(value)}")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                full = f"{path}.{key}" if path else str(key)
                raise ConfigError(
                    f"{full}: unknown key (expected one of: {', '.join(sorted(allowed))})"
                )
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected a list, got {_kind(value)}")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: expected a non-empty string, got {_kind(value)}")
    return value


def _port(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"{path}: expected a port number 0-65535, got {value!r}")
    return value


def _path(value: Any, path: str) -> Path:
    text = _string(value, path)
    return Path(os.path.expandvars(text)).expanduser()


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any, path: str, *, positive: bool = False) -> float:
    """Seconds, from a number or a string such as `90s`, `10m`, `12h`, `7d`."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value)
        if match:
            seconds = float(match[1]) * _UNITS[match[2] or "s"]
    if seconds is None or seconds < 0 or (positive and seconds == 0):
        raise ConfigError(f"{path}: expected a duration such as 30s, 10m, 7d, got {value!r}")
    return seconds


_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip


def parse_size(value: Any, path: str) -> int:
    """Bytes, from a number or a string such as `500MB`, `200GB`, `1.5TiB`."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if match and match[2].lower() in _SIZE_UNITS:
            return int(float(match[1]) * _SIZE_UNITS[match[2].lower()])
    raise ConfigError(f"{path}: expected a size such as 500MB, 200GB, 1.5TiB, got {value!r}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"
