"""The YAML configuration file, validated into `Config`.

Every error names the key path it is about (`upstreams.pytorch.mirrors[0]: ...`), so a typo
stops the server with a message that says where to look. Plain settings are one table
(`SETTINGS`): a key path, the `Config` field it sets and how its value is read (a reader of
`config_values`); the structured parts (upstreams, routes, indexes, circuit) have a function
each.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from . import config_values as read
from .advisories import SEVERITIES
from .config import (
    MIRROR_ORDERS,
    STRATEGIES,
    Circuit,
    Config,
    ConfigError,
    Hosted,
    Index,
    Limits,
    Prefetch,
    Route,
    Upstream,
)
from .config_conda import conda_section
from .local_folders import hosted_url, local_url
from .policy import MODES, Policy
from .pytorch_builds import with_builds


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


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    field: str  # what it sets: a field of Config (of Circuit, Limits or Prefetch, for theirs)
    read: read.Reader

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}"


SETTINGS = (
    Setting("listen", "host", "host", read.string),
    Setting("listen", "port", "port", read.port),
    Setting("listen", "drain_timeout", "drain_timeout", read.duration),
    Setting("cache", "dir", "cache_dir", read.file_path),
    Setting("cache", "page_ttl", "page_ttl", read.duration),
    Setting("cache", "stale_while_revalidate", "stale_while_revalidate", read.duration),
    Setting("cache", "stale_if_error", "stale_if_error", read.duration),
    Setting("cache", "max_size", "max_size", read.size),
    Setting("cache", "min_free", "min_free", read.size),
    Setting("cache", "store", "store", read.object_store),
    Setting("timeouts", "connect", "connect_timeout", read.positive_duration),
    Setting("timeouts", "first_byte", "first_byte_timeout", read.positive_duration),
    Setting("timeouts", "stall", "stall_timeout", read.positive_duration),
    Setting("timeouts", "page", "page_deadline", read.positive_duration),
    Setting("timeouts", "hedge_min", "hedge_min", read.positive_duration),
    Setting("timeouts", "hedge_max", "hedge_max", read.positive_duration),
    Setting("timeouts", "client_header", "client_header_timeout", read.positive_duration),
    Setting("timeouts", "client_send", "client_send_timeout", read.positive_duration),
    Setting("tls", "ca_bundle", "ca_bundle", read.file_path),
    Setting("links", "allow_private", "allow_private_links", read.boolean),
    Setting("mirrors", "order", "mirror_order", read.choice(MIRROR_ORDERS)),
    Setting("mirrors", "http2", "http2", read.boolean),
    Setting("downloads", "segments", "segments", read.whole_number),
    Setting("downloads", "segment_above", "segment_above", read.size),
    Setting("circuit", "failures", "failures", read.whole_number),
    Setting("circuit", "probe_interval", "probe_interval", read.positive_duration),
    Setting("circuit", "max_probe_interval", "max_probe_interval", read.positive_duration),
    Setting("offload", "x_accel_redirect", "x_accel_redirect", read.location),
    Setting("limits", "page_size", "page_size", read.size),
    Setting("limits", "page_links", "page_links", read.whole_number),
    Setting("limits", "metadata_size", "metadata_size", read.size),
    Setting("limits", "page_memory", "page_memory", read.size),
    Setting("limits", "mirror_requests", "mirror_requests", read.whole_number),
    Setting("limits", "repodata_size", "repodata_size", read.size),
    Setting("prefetch", "dependencies", "dependencies", read.boolean),
    Setting("prefetch", "small_files", "small_files", read.size),
    Setting("prefetch", "concurrency", "concurrency", read.whole_number),
    Setting("prefetch", "projects", "projects", read.whole_number),
)
# Ranges of one file at once: more only add requests (CDNs answer many with 429).
MAX_SEGMENTS = 16
SECTIONS = {s.section: {t.key for t in SETTINGS if t.section == s.section} for s in SETTINGS}
TOP_LEVEL = {*SECTIONS, "upstreams", "routes", "indexes", "policy", "pytorch", "conda"}
# The keys of a `policy` (at the top level, in an index, in a route) and how each is read.
POLICY = {
    "min_age": read.duration,
    "exclude_newer": read.timestamp,
    "allow": read.allowed,
    "deny": read.patterns,
    "only": read.patterns,
    "advisories": read.file_path,
    "advisory_mode": read.choice(MODES),
    "block_severity": read.choice(SEVERITIES),
    "waivers": read.strings,
}
Keys = dict[str, Any]  # policy keys as read, to lay over those of the level above


def parse_config(data: Any) -> Config:
    root = with_builds(read.mapping(data, "", TOP_LEVEL))
    sections = {
        name: read.mapping(root.get(name, {}), name, keys) for name, keys in SECTIONS.items()
    }
    upstreams = _upstreams(root.get("upstreams"))
    policy = _policy(root.get("policy", {}), "policy", {})
    indexes = _indexes(root, [u.name for u in upstreams], policy)
    values = {
        s.field: s.read(sections[s.section][s.key], s.path)
        for s in SETTINGS
        if s.key in sections[s.section]
    }
    circuit, limits = _grouped(Circuit, values), _grouped(Limits, values)
    if circuit.max_probe_interval < circuit.probe_interval:
        raise ConfigError("circuit.max_probe_interval: shorter than circuit.probe_interval")
    if values.get("hedge_max", Config.hedge_max) < values.get("hedge_min", Config.hedge_min):
        raise ConfigError("timeouts.hedge_max: shorter than timeouts.hedge_min")
    if values.get("segments", 1) > MAX_SEGMENTS:
        raise ConfigError(f"downloads.segments: at most {MAX_SEGMENTS}, got {values['segments']}")
    conda_upstreams, channels = conda_section(root.get("conda", {}), {u.name for u in upstreams})
    return Config(
        upstreams=upstreams,
        indexes=indexes,
        conda_upstreams=conda_upstreams,
        conda_channels=channels,
        circuit=circuit,
        limits=limits,
        prefetch=_grouped(Prefetch, values),
        **values,
    )


G = TypeVar("G", Circuit, Limits, Prefetch)


def _grouped(group: type[G], values: dict[str, Any]) -> G:
    """The settings of a group of their own in `Config`, taken out of `values`."""
    return group(**{f.name: values.pop(f.name) for f in fields(group) if f.name in values})


# -- upstreams, routes and indexes ------------------------------------------------------------

# Index names are the first segment of a path; these are taken.
_RESERVED = {"simple", "files", "-", "metrics", "conda", "upload"}


def _upstreams(value: Any) -> tuple[Upstream, ...]:
    if value is None:
        raise ConfigError("upstreams: missing; name at least one upstream with its mirrors")
    groups = read.mapping(value, "upstreams", None)
    if not groups:
        raise ConfigError("upstreams: empty; name at least one upstream with its mirrors")
    result = []
    for name, body in groups.items():
        path = f"upstreams.{name}"
        if not isinstance(name, str) or not read.NAME.fullmatch(name):
            raise ConfigError(f"{path}: upstream names are letters, digits, '.', '_' and '-'")
        spec = read.mapping(body, path, {"mirrors", "kind", "tokens", "tokens_env"})
        if spec.get("kind") == "hosted":
            result.append(_hosted(name, spec, path))
            continue
        if "kind" in spec:
            raise ConfigError(f"{path}.kind: expected hosted (or no kind), got {spec['kind']!r}")
        if "tokens" in spec or "tokens_env" in spec:
            raise ConfigError(f"{path}: tokens are for a group of kind hosted")
        mirrors = read.sequence(spec.get("mirrors"), f"{path}.mirrors")
        if not mirrors:
            raise ConfigError(f"{path}.mirrors: needs at least one URL")
        urls = [_mirror(m, f"{path}.mirrors[{i}]") for i, m in enumerate(mirrors)]
        flat = frozenset(url for url, is_flat in urls if is_flat)
        result.append(Upstream(name, tuple(url for url, _ in urls), flat))
    return tuple(result)


def _hosted(name: str, spec: dict[str, Any], path: str) -> Upstream:
    """A group of uploaded files: no mirrors; who may upload."""
    if "mirrors" in spec:
        raise ConfigError(f"{path}.mirrors: a hosted group has none (its files are uploaded)")
    tokens = [read.string(t, f"{path}.tokens[{i}]") for i, t in
              enumerate(read.sequence(spec.get("tokens", []), f"{path}.tokens"))]  # fmt: skip
    env = read.string(spec["tokens_env"], f"{path}.tokens_env") if "tokens_env" in spec else None
    if not tokens and env is None:
        raise ConfigError(f"{path}: name who may upload: tokens, or tokens_env (a variable)")
    return Upstream(name, (hosted_url(name),), hosted=Hosted(tuple(tokens), env))


def _mirror(value: Any, path: str) -> tuple[str, bool]:
    """A mirror's URL, and whether it is a flat listing: an index URL as a plain string, or
    `{url, kind}` with `kind` simple (the default) or flat, or `{path, kind: local}`."""
    if not isinstance(value, dict):
        return read.index_url(value, path), False
    kind = value.get("kind", "simple")
    if kind == "local":
        spec = read.mapping(value, path, {"path", "kind"})
        return local_url(read.file_path(spec.get("path"), f"{path}.path")), False
    spec = read.mapping(value, path, {"url", "kind"})
    if kind not in ("simple", "flat"):
        raise ConfigError(f"{path}.kind: expected simple, flat or local, got {kind!r}")
    if kind == "flat":  # a page of its own, as given: no slash to add
        return read.http_url(spec.get("url"), f"{path}.url"), True
    return read.index_url(spec.get("url"), f"{path}.url"), False


def _policy(value: Any, path: str, above: Keys) -> Keys:
    """The policy keys given here over those of the level above (a list replaces a list)."""
    spec = read.mapping(value, path, set(POLICY))
    return {**above, **{key: POLICY[key](v, f"{path}.{key}") for key, v in spec.items()}}


def _indexes(root: dict[Any, Any], known: list[str], policy: Keys) -> tuple[Index, ...]:
    if "indexes" not in root:
        if "routes" in root:
            routes = _routes(root["routes"], known, "routes", policy)
        else:
            routes = (Route(patterns=("*",), upstreams=tuple(known), policy=Policy(**policy)),)
        return (Index("default", routes, Policy(**policy)),)
    if "routes" in root:
        raise ConfigError("routes: with indexes, each index has its own routes")
    specs = read.mapping(root["indexes"], "indexes", None)
    if not specs:
        raise ConfigError("indexes: empty; name at least one index with its routes")
    indexes, default = [], None
    for name, body in specs.items():
        index, is_default = _index(name, body, known, policy)
        if is_default:
            if default is not None:
                raise ConfigError(
                    f"indexes.{name}.default: {default.name!r} is the default already"
                )
            default = index
        indexes.append(index)
    if default is not None:  # the default first
        indexes.remove(default)
        indexes.insert(0, default)
    return tuple(indexes)


def _index(name: Any, body: Any, known: list[str], above: Keys) -> tuple[Index, bool]:
    """An index, and whether it says it is the default."""
    path = f"indexes.{name}"
    if not isinstance(name, str) or not read.NAME.fullmatch(name):
        raise ConfigError(f"{path}: index names are letters, digits, '.', '_' and '-'")
    if name in _RESERVED:
        raise ConfigError(f"{path}: {name!r} is taken by the proxy's own paths")
    spec = read.mapping(body, path, {"routes", "default", "policy"})
    if "routes" not in spec:
        raise ConfigError(f"{path}.routes: missing")
    policy = _policy(spec.get("policy", {}), f"{path}.policy", above)
    index = Index(name, _routes(spec["routes"], known, f"{path}.routes", policy), Policy(**policy))
    is_default = spec.get("default", False)
    if is_default is not True and is_default is not False:
        raise ConfigError(f"{path}.default: expected true or false")
    return index, is_default


def _routes(value: Any, known: list[str], where: str, policy: Keys) -> tuple[Route, ...]:
    routes = tuple(
        _route(item, known, f"{where}[{i}]", policy)
        for i, item in enumerate(read.sequence(value, where))
    )
    if not routes:
        raise ConfigError(f"{where}: empty; needs at least one route")
    return routes


def _route(value: Any, known: list[str], path: str, above: Keys) -> Route:
    spec = read.mapping(value, path, {"projects", "upstreams", "strategy", "policy"})
    for key in ("projects", "upstreams"):
        if key not in spec:
            raise ConfigError(f"{path}.{key}: missing")
    projects = read.sequence(spec["projects"], f"{path}.projects")
    patterns = tuple(read.pattern(p, f"{path}.projects[{j}]") for j, p in enumerate(projects))
    targets = read.sequence(spec["upstreams"], f"{path}.upstreams")
    if not patterns or not targets:
        raise ConfigError(f"{path}: needs at least one project and one upstream")
    for j, target in enumerate(targets):
        if target not in known:
            raise ConfigError(
                f"{path}.upstreams[{j}]: unknown upstream {target!r} (known: {', '.join(known)})"
            )
    strategy = spec.get("strategy", "first")
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"{path}.strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}"
        )
    policy = Policy(**_policy(spec.get("policy", {}), f"{path}.policy", above))
    return Route(patterns, tuple(targets), strategy, policy)
