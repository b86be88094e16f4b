"""The configuration as frozen dataclasses: what the proxy serves, from where, and how.

`config_yaml` builds it from the YAML file, checking every value on the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from .model import NormalizedName
from .parse import MAX_LINKS
from .policy import Policy
from .wheel import METADATA_LIMIT


class ConfigError(ValueError):
    """A configuration that cannot be served; the message names the offending key path."""


Strategy = Literal["first", "union"]
STRATEGIES: tuple[Strategy, ...] = ("first", "union")
MirrorOrder = Literal["measured", "configured"]
MIRROR_ORDERS: tuple[MirrorOrder, ...] = ("measured", "configured")


@dataclass(frozen=True)
class Hosted:
    """A group of files uploaded to the proxy (`{kind: hosted}`), at `/upload/<group>/`:
    who may upload, by the tokens listed here or in the environment variable named."""

    tokens: tuple[str, ...] = ()
    tokens_env: str | None = None


@dataclass(frozen=True)
class Upstream:
    """A group of interchangeable mirrors of one index, tried in order. A mirror is a simple
    index (`<url><project>/`), or, if listed in `flat`, one page of links to every file
    (a find-links listing, as some national mirrors of the PyTorch index are). A `hosted`
    group's one mirror is the folder of its uploads (see `local_folders`)."""

    name: str
    mirrors: tuple[str, ...]
    flat: frozenset[str] = frozenset()
    hosted: Hosted | None = None


@dataclass(frozen=True)
class Route:
    """Projects matching any pattern are looked up in these upstreams. With the `first`
    strategy the first one that has the project serves all its files (so a name routed to
    the PyTorch index never takes files from elsewhere); with `union`, files are merged, the
    earlier upstream winning on a filename."""

    patterns: tuple[str, ...]
    upstreams: tuple[str, ...]
    strategy: Strategy = "first"
    policy: Policy = field(default_factory=Policy)  # the index's, the route's keys over it

    def pattern_matching(self, name: NormalizedName) -> str | None:
        return next((p for p in self.patterns if fnmatchcase(name, p)), None)


@dataclass(frozen=True)
class Index:
    """A client-facing index, at `/<name>/simple/` (the default one at `/simple/` too),
    with its own routes: a profile such as `cu118` or `cpu`."""

    name: str
    routes: tuple[Route, ...]
    policy: Policy = field(default_factory=Policy)  # the top level's, the index's over it


@dataclass(frozen=True)
class CondaChannel:
    """A conda channel served at `/conda/<name>/`, named as conda users write it (`pkgs/main`,
    `conda-forge`), from `<mirror><path>/` of each mirror of its conda group."""

    name: str
    upstream: str
    path: str  # below each mirror, without slashes at either end ("" for the mirror itself)

    def url_on(self, mirror: str) -> str:
        """Where a mirror keeps the channel: its URL, ending in a slash."""
        return f"{mirror}{self.path}/" if self.path else mirror


@dataclass(frozen=True)
class Circuit:
    """When a failing mirror is skipped, and how often it is probed again."""

    failures: int = 3
    probe_interval: float = 5.0
    max_probe_interval: float = 300.0


@dataclass(frozen=True)
class Limits:
    """Bounds on what the proxy takes from upstream and keeps in memory, so that a hostile
    (or broken) mirror cannot make it use without end."""

    page_size: int = 256 * 10**6  # bytes of an index page, decoded (the official index's
    # largest project pages are a few tens of MB, its root about 40 MB)
    page_links: int = MAX_LINKS  # files on one page
    metadata_size: int = METADATA_LIMIT  # bytes of a METADATA, `.metadata` or provenance file
    page_memory: int = 512 * 2**20  # bytes the pages kept in memory, rendered, may take
    mirror_requests: int = 8  # pages and metadata asked of one mirror at once (see
    # `MirrorRequests._turn`); file bodies are not counted
    repodata_size: int = 4 * 2**30  # bytes of one conda index file, decompressed (conda-forge's
    # largest repodata.json is some hundreds of MB)


@dataclass(frozen=True)
class Prefetch:
    """Warming what a client will ask for next, from the dependencies in the core metadata
    it is served (see `server.warming`)."""

    dependencies: bool = True  # their pages, and the metadata of the files likely picked
    small_files: int = 2**20  # and those files themselves, up to this size (0: none)
    concurrency: int = 4  # projects warmed at once, over every client
    projects: int = 30  # projects one metadata request may warm, counting their own


@dataclass(frozen=True)
class ObjectStore:
    """An S3-compatible bucket behind the local cache (`cache.store`): verified files under
    their content address, shared by every replica. Credentials come from the environment
    (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) or from an AWS credentials file; they are
    never part of this, so it can be shown."""

    bucket: str
    prefix: str = ""  # without slashes at either end
    endpoint: str | None = None  # `http://host:port` for SeaweedFS, Garage, MinIO, ...
    region: str | None = None
    credentials: Path | None = None  # an AWS credentials file ([default] or $AWS_PROFILE)

    @property
    def url(self) -> str:
        """`s3://bucket/prefix`, as configured."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def location(self) -> str:
        """Where its objects are: the endpoint, bucket and prefix (to show, and to name its
        health by)."""
        return f"{self.endpoint or 's3:/'}/{self.bucket}/{self.prefix}".rstrip("/") + "/"


@dataclass(frozen=True)
class Config:
    upstreams: tuple[Upstream, ...]
    indexes: tuple[Index, ...]  # the first is the default, also at /simple/
    # Conda: groups of interchangeable mirrors, and the channels served from them at /conda/.
    conda_upstreams: tuple[Upstream, ...] = ()
    conda_channels: tuple[CondaChannel, ...] = ()
    host: str = "0.0.0.0"
    port: int = 3141
    # On SIGTERM, how long requests under way (downloads) may take to finish before it stops.
    drain_timeout: float = 60.0
    cache_dir: Path = field(default_factory=lambda: Path("pypi-proxy-cache"))
    page_ttl: float = 600.0
    stale_while_revalidate: float = 86400.0
    stale_if_error: float = 7 * 86400.0
    max_size: int | None = None  # bytes of files kept; None: no limit but the disk's
    min_free: int = 1_000_000_000  # bytes always left free on the cache's disk
    connect_timeout: float = 10.0
    first_byte_timeout: float = 30.0
    stall_timeout: float = 60.0
    # Waiting this long for a mirror's headers, at least and at most, before asking the next
    # mirror as well (see `MirrorHealth.hedge_delay`).
    hedge_min: float = 0.25
    hedge_max: float = 2.0
    mirror_order: MirrorOrder = "measured"  # or "configured": strictly as listed
    http2: bool = True  # for pages and metadata, with mirrors that offer it (TLS, ALPN)
    # A file of at least `segment_above` bytes, from a mirror that honours Range, comes as
    # up to this many ranges at once (see `server.segmented`); 1: one stream for every file.
    segments: int = 8
    segment_above: int = 32 * 2**20
    client_header_timeout: float = 60.0  # for a client's request headers, as nginx's
    client_send_timeout: float = 60.0  # for a client to take a piece of an answer
    ca_bundle: Path | None = None
    store: ObjectStore | None = None  # the object-store tier under the local cache
    circuit: Circuit = field(default_factory=Circuit)
    limits: Limits = field(default_factory=Limits)
    prefetch: Prefetch = field(default_factory=Prefetch)
    page_deadline: float = 120.0  # for a whole page body: a mirror that drips one fails over
    allow_private_links: bool = False  # see `core.link_targets`
    # With nginx in front: cache hits answered by this internal location (sendfile).
    x_accel_redirect: str | None = None

    def policies(self) -> set[Policy]:
        return {p for i in self.indexes for p in (i.policy, *(r.policy for r in i.routes))}

    def upstream(self, name: str) -> Upstream:
        return next(u for u in (*self.upstreams, *self.conda_upstreams) if u.name == name)

    def index(self, name: str | None = None) -> Index:
        """The index of this name (None: the default one); ConfigError naming those there are."""
        if name is None:
            return self.indexes[0]
        found = next((i for i in self.indexes if i.name == name), None)
        if found is None:
            known = ", ".join(i.name for i in self.indexes)
            raise ConfigError(f"no index named {name!r} (known: {known})")
        return found

    def index_path(self, index: Index) -> str:
        """Where clients find an index: the default at `/simple/`, the others under their name."""
        return "/simple/" if index is self.indexes[0] else f"/{index.name}/simple/"


def default_config_path() -> Path:
    """The bundled config: inside the installed package, or `config/` in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "default-config.yaml"
    if packaged.exists():
        return packaged
    return package.parent / "config" / "pypi-proxy.yaml"
