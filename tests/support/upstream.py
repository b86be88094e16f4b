"""A fake upstream package index with fault switches and a request log.

Two styles mimic the upstreams the proxy has to cope with:

``mirror``
    A mirror of the official index. PEP 503 HTML or PEP 691 JSON (api-version 1.1) chosen by
    the Accept header, project pages at ``{prefix}/<name>/``, file links relative to the page
    (``../../packages/<aa>/<bb>/<rest of sha256>/<file>#sha256=...``) so files live at
    ``<parent of prefix>/packages/...``. Unknown projects: 404. Non-normalized names and
    missing trailing slashes are redirected (301), as the official index does.
``pytorch``
    The PyTorch wheel index (an S3 bucket behind a CDN). HTML only, root-relative links with
    ``+`` written as ``%2B``, files at ``{prefix}/<file>``. Anything unknown: 403 with an S3
    ``AccessDenied`` XML body.

Every request is either a *page* request (root listing, project page) or a *file* request
(everything else); ``page_faults`` and ``file_faults`` switch failures on for each kind. The
switches are read while the server thread answers, so tests flip them from their own thread
with plain attribute sets. Bodies are sent by a hand-written ASGI loop in 64 KiB chunks, so
drip, cut and gate are visible on a real socket.

    up = FakeUpstream()                      # or FakeUpstream("pytorch")
    up.add(make_wheel("foo", "1.0"), metadata=True)
    with up.running() as base:               # or support.servers.serve(up.app, lifespan="auto")
        up.file_faults.cut_after = 1000
        ...
        assert up.count("/simple/foo/", method="GET") == 1
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .servers import serve
from .wheels import Dist, normalize_name

Style = Literal["mirror", "pytorch"]
Kind = Literal["page", "file"]

CHUNK = 64 * 1024
JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
)
DEFAULT_PREFIX: dict[Style, str] = {"mirror": "/simple", "pytorch": "/whl/cu121"}
_POLL = 0.02  # seconds between looks at a switch while waiting


@dataclass
class Faults:
    """Failure switches for one kind of request; all off by default.

    status       answer every request with this status (plus ``Retry-After: retry_after``)
    hang         accept the request and answer nothing until switched off or the client
                 leaves; ``FakeUpstream.close()`` ends the wait with a 503
    drip         sleep this many seconds between 64 KiB chunks
    delay        wait this many seconds before answering each request (a far upstream)
    rate         send each response's body at most this many bytes a second (a CDN's cap
                 per connection)
    cut_after    announce the full Content-Length, then drop the connection after N body bytes
                 (no effect when the body is not longer than N)
    cut_times    cut only this many responses (then send whole bodies); None: every one
    corrupt      flip one byte in the middle of the content (same length; ETag unchanged)
    no_range     ignore Range headers (always 200 with the whole body, no Accept-Ranges)
    missing      names answered as unknown: filenames for files, project names for pages
    gate         send headers and a first chunk (at most half the body), then hold the rest
                 until the event is set
    """

    status: int | None = None
    retry_after: int | None = None
    hang: bool = False
    drip: float | None = None
    delay: float | None = None
    rate: float | None = None
    cut_after: int | None = None
    cut_times: int | None = None
    cuts: int = 0  # responses cut so far
    corrupt: bool = False
    no_range: bool = False
    missing: set[str] = field(default_factory=set)
    gate: asyncio.Event | threading.Event | None = None


@dataclass
class RequestRecord:
    """One request as the upstream received it. ``path`` is the raw, undecoded path."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    kind: Kind
    status: int | None = None
    bytes_sent: int = 0  # body bytes handed to the server so far
    http_version: str = ""  # as the server says: "1.1", "2"


class UpstreamAbort(Exception):
    """Raised inside the app to drop a connection mid-body on purpose (cut_after, or a gated
    or dripping body when the client left or ``close()`` was called)."""


class _QuietAborts(logging.Filter):
    # Uvicorn logs any exception escaping the app with a traceback; ours are deliberate.
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, UpstreamAbort)


logging.getLogger("uvicorn.error").addFilter(_QuietAborts())


@dataclass
class _Entry:
    """A file listed on a project page."""

    dist: Dist
    path: str  # decoded URL path the file is served at
    href: str  # link target as written on the page, without the #sha256 fragment
    version: str | None
    yanked: bool | str
    requires_python: str | None
    metadata: bool
    upload_time: str | None


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _Unsatisfiable(Exception):
    pass


class FakeUpstream:
    """A fake package index; ``.app`` is the ASGI app to serve (see ``support.servers``)."""

    def __init__(self, style: Style = "mirror", prefix: str | None = None) -> None:
        if style not in DEFAULT_PREFIX:
            raise ValueError(f"unknown style {style!r}")
        self.style: Style = style
        self.prefix = _clean_prefix(DEFAULT_PREFIX[style] if prefix is None else prefix)
        self.page_faults = Faults()
        self.file_faults = Faults()
        # Some mirrors serve PEP 691 JSON as application/octet-stream; set that here.
        self.json_content_type = JSON_V1
        # Decoded path -> absolute URL answered with a 302 (mirrors that send misses elsewhere).
        self.redirects: dict[str, str] = {}
        self._projects: dict[str, list[_Entry]] = {}
        self._raw_pages: dict[str, dict[str, bytes]] = {}
        self._blobs: dict[str, bytes] = {}  # decoded path -> bytes: files, .metadata, blobs
        self._log: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        # Passing the instance (not a function) as endpoint makes starlette treat it as a raw
        # ASGI app, which is what lets us control every chunk.
        self.app = Starlette(routes=[Route("/{path:path}", self, methods=["GET"])])

    # -- content ------------------------------------------------------------------------------

    def add(
        self,
        dist: Dist,
        *,
        project: str | None = None,
        yanked: bool | str = False,
        requires_python: str | None = None,
        metadata: bool = False,
        upload_time: str | None = None,
    ) -> None:
        """List ``dist`` on its project page and serve it (and ``.metadata`` if ``metadata``).

        ``requires_python`` defaults to the wheel's own; pass ``""`` to advertise none.
        ``upload_time`` (e.g. ``"2024-01-02T03:04:05.000000Z"``) is omitted from JSON if None.
        Adding a filename again replaces the earlier entry.
        """
        name = normalize_name(project or dist.project)
        path, href = self._locate(dist.filename, dist.sha256)
        entry = _Entry(
            dist=dist,
            path=path,
            href=href,
            version=_version_of(dist.filename),
            yanked=yanked,
            requires_python=dist.requires_python if requires_python is None else requires_python,
            metadata=metadata,
            upload_time=upload_time,
        )
        with self._lock:
            entries = self._projects.setdefault(name, [])
            entries[:] = [e for e in entries if e.dist.filename != dist.filename] + [entry]
            self._blobs[path] = dist.content
            if metadata:
                self._blobs[path + ".metadata"] = dist.metadata
            else:
                self._blobs.pop(path + ".metadata", None)

    def add_raw_page(self, project: str, body: bytes, content_type: str) -> None:
        """Serve ``body`` verbatim as the page of ``project`` (one body per content type).

        With both an HTML and a JSON body the Accept header picks, as for generated pages.
        """
        with self._lock:
            self._raw_pages.setdefault(normalize_name(project), {})[content_type] = body

    def drop_raw_pages(self) -> None:
        """Back to generated pages for every project given a raw one."""
        with self._lock:
            self._raw_pages.clear()

    def add_blob(self, path: str, content: bytes) -> None:
        """Serve ``content`` at the (decoded) URL path ``path``, as a file."""
        with self._lock:
            self._blobs[path] = content

    # -- URLs ---------------------------------------------------------------------------------

    def root_url(self, base: str) -> str:
        return f"{base}{self.prefix}/"

    def page_url(self, base: str, project: str) -> str:
        return f"{base}{self.prefix}/{normalize_name(project)}/"

    def file_url(self, base: str, filename: str) -> str:
        """Absolute URL of a file added with ``add`` (KeyError if there is none)."""
        with self._lock:
            for entries in self._projects.values():
                for entry in entries:
                    if entry.dist.filename == filename:
                        return base + quote(entry.path)
        raise KeyError(filename)

    # -- request log --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def count(self, match: str | Callable[[RequestRecord], bool], method: str | None = None) -> int:
        """Number of logged requests whose raw path contains ``match`` (or that match it)."""

        def hit(r: RequestRecord) -> bool:
            return match in r.path if isinstance(match, str) else match(r)

        wanted = None if method is None else method.upper()
        return sum(1 for r in self.requests if hit(r) and wanted in (None, r.method))

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def reset_faults(self) -> None:
        """Switch every fault off (fresh ``Faults``) and serve JSON with its proper type again."""
        self.page_faults = Faults()
        self.file_faults = Faults()
        self.json_content_type = JSON_V1

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Let the server stop without waiting for faults: hanging requests get a 503 now,
        gated or dripping bodies are cut, and so is everything after (until ``running``)."""
        self._closing.set()

    @contextmanager
    def running(self, port: int = 0) -> Iterator[str]:
        """Serve this upstream on a free port; yield the base URL; stop fast on exit."""
        self._closing.clear()
        with serve(self.app, lifespan="auto", port=port) as base:
            try:
                yield base
            finally:
                self.close()

    # -- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if path in self.redirects:
            redirect = _Reply(302, b"", {"location": self.redirects[path]})
            record = RequestRecord(scope["method"], path, "", headers, "file")
            with self._lock:
                self._log.append(record)
            await _send_reply(send, redirect, record, Faults(), True, lambda: False)
            return
        kind = self._kind(path)
        faults = self.page_faults if kind == "page" else self.file_faults
        record = RequestRecord(
            method=scope["method"],
            path=scope.get("raw_path", path.encode()).decode("latin-1"),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            kind=kind,
            http_version=scope.get("http_version", ""),
        )
        with self._lock:
            self._log.append(record)

        # Watch for the client leaving, so hang/gate/drip waits end with the connection.
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        try:
            await self._respond(scope, send, record, faults, gone)
        finally:
            watcher.cancel()

    async def _respond(
        self, scope: Scope, send: Send, record: RequestRecord, faults: Faults, gone: asyncio.Event
    ) -> None:
        def stopped() -> bool:
            return gone.is_set() or self._closing.is_set()

        if faults.delay:
            await asyncio.sleep(faults.delay)
        if faults.hang:
            await _wait(lambda: not faults.hang or stopped())
            if gone.is_set():
                return  # nobody left to answer
        if self._closing.is_set():
            reply = _Reply(503, b"shutting down\n", {"content-type": "text/plain"})
        elif faults.status is not None:
            reply = _Reply(faults.status, b"fault injected\n", {"content-type": "text/plain"})
            if faults.retry_after is not None:
                reply.headers["retry-after"] = str(faults.retry_after)
        else:
            with self._lock:
                if record.kind == "page":
                    reply = self._page(scope["path"], record.headers.get("accept", ""), faults)
                else:
                    reply = self._file(
                        scope["path"],
                        record.headers.get("range"),
                        faults,
                        record.headers.get("if-none-match"),
                    )
        # Body faults only touch real content, not error answers.
        body_faults = faults if 200 <= reply.status < 300 else Faults()
        await _send_reply(send, reply, record, body_faults, scope["method"] == "HEAD", stopped)

    # -- routing ------------------------------------------------------------------------------

    def _kind(self, path: str) -> Kind:
        if path in self._blobs:
            return "file"
        if path == self.prefix + "/" or (self.style == "mirror" and path == self.prefix):
            return "page"
        rest = path.removeprefix(self.prefix + "/") if path.startswith(self.prefix + "/") else ""
        segment = rest.removesuffix("/")
        if not segment or "/" in segment:
            return "file"
        # PyTorch files sit right under the prefix; only a trailing slash makes a page there.
        return "page" if self.style == "mirror" or rest.endswith("/") else "file"

    def _locate(self, filename: str, sha256: str) -> tuple[str, str]:
        """(served path, href on the project page) for a file."""
        if self.style == "pytorch":
            path = f"{self.prefix}/{filename}"
            return path, quote(path)  # quote() writes "+" as %2B, like the real index
        tail = f"{sha256[:2]}/{sha256[2:4]}/{sha256[4:]}/{filename}"
        packages_root = self.prefix.rsplit("/", 1)[0] + "/packages"
        return f"{packages_root}/{tail}", "../../packages/" + quote(tail, safe="/+")

    def _not_found(self) -> _Reply:
        if self.style == "pytorch":
            return _Reply(403, ACCESS_DENIED, {"content-type": "application/xml"})
        return _Reply(404, b"Not Found\n", {"content-type": "text/plain"})

    def _file(
        self,
        path: str,
        range_header: str | None,
        faults: Faults,
        if_none_match: str | None = None,
    ) -> _Reply:
        content = self._blobs.get(path)
        if content is None or path.rsplit("/", 1)[-1] in faults.missing:
            return self._not_found()
        headers = {
            "content-type": "application/octet-stream",
            "etag": f'"{hashlib.sha256(content).hexdigest()}"',
        }
        if if_none_match is not None and if_none_match == headers["etag"]:
            return _Reply(304, b"", headers)
        if faults.corrupt:
            content = _flip_middle_byte(content)
        if faults.no_range:
            return _Reply(200, content, headers)
        headers["accept-ranges"] = "bytes"
        if range_header is None:
            return _Reply(200, content, headers)
        try:
            span = _byte_range(range_header, len(content))
        except _Unsatisfiable:
            headers["content-range"] = f"bytes */{len(content)}"
            return _Reply(416, b"", headers)
        if span is None:
            return _Reply(200, content, headers)
        first, last = span
        headers["content-range"] = f"bytes {first}-{last}/{len(content)}"
        return _Reply(206, content[first : last + 1], headers)

    def _page(self, path: str, accept: str, faults: Faults) -> _Reply:
        if path == self.prefix:
            return _Reply(301, b"", {"location": self.prefix + "/"})
        wants_json = self.style == "mirror" and _wants_json(accept)
        asked_v1_html = _accept_q(accept).get(HTML_V1, 0.0) > 0
        html_type = HTML_V1 if self.style == "mirror" and asked_v1_html else "text/html"
        if path == self.prefix + "/":
            names = sorted(set(self._projects) | set(self._raw_pages))
            if wants_json:
                reply = self._json_reply(_root_json(names))
            else:
                reply = _Reply(200, self._root_html(names), {"content-type": html_type})
        else:
            reply = self._project_page(path[len(self.prefix) + 1 :], wants_json, html_type, faults)
            if reply.status != 200:
                return reply
        if self.style == "mirror":
            reply.headers["vary"] = "Accept"
        if faults.corrupt:
            reply.body = _flip_middle_byte(reply.body)
        return reply

    def _project_page(self, rest: str, wants_json: bool, html_type: str, faults: Faults) -> _Reply:
        name = rest.removesuffix("/")
        if self.style == "mirror" and rest != normalize_name(name) + "/":
            return _Reply(301, b"", {"location": f"{self.prefix}/{normalize_name(name)}/"})
        if name in faults.missing:
            return self._not_found()
        if name in self._raw_pages:
            content_type, body = _pick_raw(self._raw_pages[name], wants_json)
            return _Reply(200, body, {"content-type": content_type})
        if name not in self._projects:
            return self._not_found()
        entries = self._projects[name]
        if wants_json:
            return self._json_reply(_project_json(name, entries))
        body = _project_html(name, entries, meta_tag=self.style == "mirror")
        return _Reply(200, body, {"content-type": html_type})

    def _json_reply(self, document: dict[str, Any]) -> _Reply:
        body = json.dumps(document).encode()
        return _Reply(200, body, {"content-type": self.json_content_type})

    def _root_html(self, names: list[str]) -> bytes:
        # Mirrors link relative to the listing; the PyTorch index writes root-relative links.
        base = "" if self.style == "mirror" else f"{self.prefix}/"
        links = "".join(f'    <a href="{base}{n}/">{n}</a><br/>\n' for n in names)
        return f"<!DOCTYPE html>\n<html>\n  <body>\n{links}  </body>\n</html>\n".encode()


# -- rendering ------------------------------------------------------------------------------------


def _project_html(name: str, entries: list[_Entry], *, meta_tag: bool) -> bytes:
    lines = ["<!DOCTYPE html>", "<html>", "  <head>"]
    if meta_tag:
        lines.append('    <meta name="pypi:repository-version" content="1.1">')
    lines += [f"    <title>Links for {name}</title>", "  </head>", "  <body>"]
    lines.append(f"    <h1>Links for {name}</h1>")
    for e in entries:
        attrs = [f'href="{html.escape(e.href)}#sha256={e.dist.sha256}"']
        if e.requires_python:
            attrs.append(f'data-requires-python="{html.escape(e.requires_python)}"')
        if e.yanked is not False:
            # The official index writes data-yanked="" when there is no reason. A bare
            # attribute would parse as None in pip's HTML parser, which means "not yanked".
            reason = e.yanked if isinstance(e.yanked, str) else ""
            attrs.append(f'data-yanked="{html.escape(reason)}"')
        if e.metadata:
            digest = f"sha256={e.dist.metadata_sha256}"
            attrs += [f'data-dist-info-metadata="{digest}"', f'data-core-metadata="{digest}"']
        lines.append(f"    <a {' '.join(attrs)}>{html.escape(e.dist.filename)}</a><br/>")
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode()


def _project_json(name: str, entries: list[_Entry]) -> dict[str, Any]:
    files = []
    for e in entries:
        item: dict[str, Any] = {
            "filename": e.dist.filename,
            "url": e.href,
            "hashes": {"sha256": e.dist.sha256},
            "requires-python": e.requires_python or None,
            "size": e.dist.size,
            "yanked": e.yanked,
        }
        if e.upload_time is not None:
            item["upload-time"] = e.upload_time
        if e.metadata:
            digest = {"sha256": e.dist.metadata_sha256}
            item["core-metadata"] = digest
            item["data-dist-info-metadata"] = digest
        files.append(item)
    versions = sorted({e.version for e in entries if e.version is not None}, key=Version)
    return {"meta": {"api-version": "1.1"}, "name": name, "files": files, "versions": versions}


def _root_json(names: list[str]) -> dict[str, Any]:
    return {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}


# -- helpers --------------------------------------------------------------------------------------


def _clean_prefix(prefix: str) -> str:
    prefix = prefix.rstrip("/")
    return prefix if not prefix or prefix.startswith("/") else "/" + prefix


def _version_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (ValueError, InvalidVersion):
        return None


def _accept_q(accept: str) -> dict[str, float]:
    """Media type -> quality for an Accept header (missing q means 1)."""
    result: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            result[media.lower()] = q
    return result


def _wants_json(accept: str) -> bool:
    q = _accept_q(accept)
    json_q = q.get(JSON_V1, 0.0)
    html_q = max(q.get(HTML_V1, 0.0), q.get("text/html", 0.0), q.get("*/*", 0.0))
    return json_q > 0 and json_q >= html_q


def _pick_raw(pages: dict[str, bytes], wants_json: bool) -> tuple[str, bytes]:
    for content_type, body in pages.items():
        if ("json" in content_type) == wants_json:
            return content_type, body
    return next(iter(pages.items()))


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """Inclusive (first, last) of a single ``bytes=`` range; None means "ignore the header"."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if match is None or match.group(1) == match.group(2) == "":
        return None  # malformed or multiple ranges: answering 200 is allowed
    first_s, last_s = match.groups()
    if first_s == "":  # suffix: the last n bytes
        n = int(last_s)
        if n == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - n), size - 1
    first = int(first_s)
    if last_s and int(last_s) < first:
        return None  # invalid spec
    if first >= size:
        raise _Unsatisfiable
    return first, min(int(last_s), size - 1) if last_s else size - 1


def _flip_middle_byte(data: bytes) -> bytes:
    if not data:
        return data
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


async def _wait(condition: Callable[[], bool], timeout: float | None = None) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` runs out (False).

    Polling rather than awaiting an event lets tests flip plain attributes and
    threading.Events from their own thread without touching the server's loop.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while not condition():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL)
    return True


async def _hold(faults: Faults, stopped: Callable[[], bool]) -> None:
    """What the faults make a body wait for between chunks."""
    gate = faults.gate
    if gate is not None:
        await _wait(lambda: gate.is_set() or stopped())
    if faults.drip:
        await _wait(stopped, timeout=faults.drip)
    if stopped():
        raise UpstreamAbort("client gone or upstream closing")


async def _send_reply(
    send: Send,
    reply: _Reply,
    record: RequestRecord,
    faults: Faults,
    head: bool,
    stopped: Callable[[], bool],
) -> None:
    body = reply.body
    headers = {**reply.headers, "content-length": str(len(body))}
    record.status = reply.status
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        }
    )
    if head or not body:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return

    cutting = faults.cut_after is not None and faults.cut_after < len(body)
    if cutting and faults.cut_times is not None and faults.cuts >= faults.cut_times:
        cutting = False
    if cutting:
        faults.cuts += 1
    limit = faults.cut_after if cutting and faults.cut_after is not None else len(body)
    gate = faults.gate
    # With a gate, hold back at least half of the body even when it fits in one chunk.
    first_chunk = CHUNK if gate is None else min(CHUNK, max(1, len(body) // 2))
    sent, started = 0, time.monotonic()
    while sent < limit:
        if faults.rate:
            await _wait(stopped, timeout=started + sent / faults.rate - time.monotonic())
        if sent:
            await _hold(faults, stopped)
        end = min(limit, sent + (first_chunk if sent == 0 else CHUNK))
        await send({"type": "http.response.body", "body": body[sent:end], "more_body": True})
        sent = record.bytes_sent = end
    if sent < len(body):
        raise UpstreamAbort(f"cut after {sent} of {len(body)} bytes")
    await send({"type": "http.response.body", "body": b"", "more_body": False})
