"""The status page at `/`: how the mirrors are doing, what the cache holds and saves, what is
downloading now, and how to point each kind of client at each index. Plain HTML rendered
from a snapshot (no build step, no request back to the server), readable on a phone."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from .client_setup import SYSTEMS, Snippet, conda_snippets, snippets
from .health import MirrorReport
from .units import human_duration as duration
from .units import human_size as size


@dataclass(frozen=True)
class CacheFigures:
    files: int
    bytes: int
    max_size: int | None
    disk_free: int
    min_free: int


@dataclass(frozen=True)
class Traffic:
    """What this process answered since it started."""

    file_hits: int
    file_answers: int
    page_hits: int
    page_answers: int
    served: int  # file bytes sent to clients
    fetched: int  # file bytes downloaded from upstreams


@dataclass(frozen=True)
class DownloadProgress:
    filename: str
    written: int
    size: int | None


@dataclass(frozen=True)
class StoreFigures:
    """The object-store tier, as this process sees it."""

    url: str  # s3://bucket/prefix: never credentials
    up: bool
    last_error: str | None
    hits: int  # files brought into the local cache from it
    pending: int  # uploads not done yet
    failures: int  # uploads that failed


@dataclass(frozen=True)
class CondaFigures:
    """The conda channels served, at `url` as this browser reaches it, and what of them the
    cache knows."""

    url: str  # http://host:port/conda
    channels: tuple[str, ...]
    listed: int  # packages the cached index files list
    requests: dict[str, int]  # this process's requests for index files, shards, packages


@dataclass(frozen=True)
class Snapshot:
    version: str
    uptime: float
    mirrors: dict[str, list[MirrorReport]]  # upstream name -> its mirrors' health
    cache: CacheFigures
    traffic: Traffic
    downloads: list[DownloadProgress]
    # (name, the index URL as this browser reaches it, what it offers of torch)
    indexes: list[tuple[str, str, str]]
    hidden: dict[str, int] = field(default_factory=dict)  # policy key -> what it hid
    advisories: dict[str, int] = field(default_factory=dict)  # advisory path -> loaded
    store: StoreFigures | None = None
    conda: CondaFigures | None = None


def render_status(snap: Snapshot) -> str:
    return _PAGE.format(
        style=_STYLE,
        script=_SCRIPT,
        version=escape(snap.version),
        uptime=duration(snap.uptime),
        mirrors=_mirrors(snap.mirrors),
        cache=_cache(snap.cache, snap.traffic)
        + _store(snap.store)
        + _conda(snap.conda)
        + _policy(snap.hidden, snap.advisories),
        downloads=_downloads(snap.downloads),
        setup="".join(
            _index_setup(name, url, torch, first=not i)
            for i, (name, url, torch) in enumerate(snap.indexes)
        )
        + _conda_setup(snap.conda),
    )


def _ratio(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}% ({part:,} of {whole:,})" if whole else "no answers yet"


def _mirrors(mirrors: dict[str, list[MirrorReport]]) -> str:
    rows = []
    for upstream, reports in mirrors.items():
        for report in reports:
            latency = report.latency_ms
            error = report.last_error or ""
            if not report.up:
                css, state = "down", f"down, next try in {duration(report.next_probe_in_s or 0)}"
            elif latency is None and not error:
                css, state = "idle", "not asked yet"
            else:
                css, state = "up", "up"
            if error and report.last_error_age_s is not None:
                error += f" ({duration(report.last_error_age_s)} ago)"
            rows.append(
                f'<tr class="{css}"><td>{escape(upstream)}</td>'
                f'<td class="url">{escape(report.url)}</td><td>{escape(state)}</td>'
                f"<td>{'-' if latency is None else f'{latency:.0f} ms'}</td>"
                f"<td>{_rate(report.throughput_mib_s)}</td><td>{report.rank}</td>"
                f'<td class="error">{escape(error)}</td></tr>'
            )
    return (
        '<table id="mirrors"><tr><th>Upstream</th><th>Mirror</th><th>State</th>'
        "<th>Latency</th><th>Throughput</th><th>Tried</th><th>Last error</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _rate(mib_s: float | None) -> str:
    return "-" if mib_s is None else f"{mib_s:.1f} MiB/s"


def _cache(cache: CacheFigures, traffic: Traffic) -> str:
    if cache.max_size:
        used = f"{size(cache.bytes)} of {size(cache.max_size)}"
        bar = f'<meter min="0" max="{cache.max_size}" value="{cache.bytes}"></meter>'
    else:
        used, bar = f"{size(cache.bytes)} (no size limit)", ""
    saved = max(traffic.served - traffic.fetched, 0)
    return f"""<dl id="cache">
<dt>Cache</dt><dd>{used} {bar}</dd>
<dt>Files</dt><dd>{cache.files:,}</dd>
<dt>Disk free</dt><dd>{size(cache.disk_free)} (kept above {size(cache.min_free)})</dd>
<dt>File hit ratio</dt><dd>{_ratio(traffic.file_hits, traffic.file_answers)}</dd>
<dt>Page hit ratio</dt><dd>{_ratio(traffic.page_hits, traffic.page_answers)}</dd>
<dt>Served to clients</dt><dd>{size(traffic.served)}</dd>
<dt>Fetched upstream</dt><dd>{size(traffic.fetched)}</dd>
<dt>Saved</dt><dd><strong>{size(saved)}</strong> of upstream traffic</dd>
</dl>"""


def _store(store: StoreFigures | None) -> str:
    if store is None:
        return ""
    state = "answering" if store.up else f"unreachable ({escape(store.last_error or '')})"
    return f"""<dl id="store">
<dt>Object store</dt><dd><code>{escape(store.url)}</code>, {state}</dd>
<dt>From the store</dt><dd>{store.hits:,} files</dd>
<dt>Uploads</dt><dd>{store.pending:,} pending, {store.failures:,} failed so far</dd>
</dl>"""


def _conda(conda: CondaFigures | None) -> str:
    if conda is None:
        return ""
    asked = " · ".join(f"{kind} {n:,}" for kind, n in conda.requests.items())
    return f"""<dl id="conda">
<dt>Conda channels</dt><dd>{len(conda.channels)}: {escape(", ".join(conda.channels))}</dd>
<dt>Conda packages listed</dt><dd>{conda.listed:,}</dd>
<dt>Conda requests</dt><dd>{asked}</dd>
</dl>"""


def _conda_setup(conda: CondaFigures | None) -> str:
    if conda is None:
        return ""
    blocks = "".join(_snippet("conda", s) for s in conda_snippets(conda.url, conda.channels))
    return (
        '<details class="index" id="index-conda">'
        f"<summary><strong>conda</strong> <code>{escape(conda.url)}/</code></summary>"
        f"{blocks}</details>"
    )


def _policy(hidden: dict[str, int], advisories: dict[str, int]) -> str:
    """What the policy hid, by key, and the advisories it works with (empty if none; there
    all the same, for the live refresh to replace)."""
    rows = [
        f"<dt>Advisories</dt><dd>{count:,} loaded from <code>{escape(path)}</code></dd>"
        for path, count in advisories.items()
    ]
    if hidden:
        counts = " · ".join(f"{escape(key)} {n:,}" for key, n in sorted(hidden.items()))
        rows.append(f"<dt>Hidden by policy</dt><dd>{counts}</dd>")
    return f'<dl id="policy">{"".join(rows)}</dl>'


def _downloads(downloads: list[DownloadProgress]) -> str:
    if not downloads:
        return '<p id="downloads">No downloads in progress.</p>'
    rows = []
    for d in sorted(downloads, key=lambda d: d.filename):
        if d.size:
            bar = f'<progress max="{d.size}" value="{d.written}"></progress>'
            done = f"{size(d.written)} of {size(d.size)} ({100 * d.written / d.size:.0f}%)"
        else:
            bar, done = "<progress></progress>", size(d.written)
        rows.append(f'<tr><td class="url">{escape(d.filename)}</td><td>{bar} {done}</td></tr>')
    return '<table id="downloads">' + "".join(rows) + "</table>"


def _index_setup(name: str, url: str, torch: str, *, first: bool) -> str:
    blocks = "".join(_snippet(name, s) for s in snippets(url))
    return (
        f'<details class="index" id="index-{escape(name)}"{" open" if first else ""}>'
        f"<summary><strong>{escape(name)}</strong> <code>{escape(url)}</code> "
        f'<span class="torch">{escape(torch)}</span></summary>'
        f"{blocks}</details>"
    )


def _snippet(index: str, snippet: Snippet) -> str:
    systems = (
        ""
        if snippet.systems == SYSTEMS
        else " on "
        + " and ".join(
            {"windows": "Windows", "linux": "Linux", "macos": "macOS"}[s] for s in snippet.systems
        )
    )
    ident = f"{index}-{snippet.key}"
    return (
        f'<div class="snippet"><p>{escape(snippet.client)}{systems}, {escape(snippet.where)}:'
        f' <button type="button" data-copy="{escape(ident)}">Copy</button></p>'
        f'<pre id="{escape(ident)}">{escape(snippet.text)}</pre></div>'
    )


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:0 .8rem 2rem;
color:#1b1f24;background:#fff}
h1{font-size:1.4rem;margin:1rem 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
.sub{color:#57606a;margin:0}
table{border-collapse:collapse;width:100%;display:block;overflow-x:auto}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #d0d7de;vertical-align:top}
tr.up td:nth-child(3){color:#1a7f37}tr.down td:nth-child(3){color:#cf222e;font-weight:600}
tr.idle td:nth-child(3){color:#6e7781}
.url{overflow-wrap:anywhere}#mirrors td.url{white-space:nowrap}.error{color:#6e7781;font-size:.9em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dt{color:#57606a}dd{margin:0}meter,progress{width:10rem;vertical-align:middle}
details.index{border:1px solid #d0d7de;border-radius:6px;padding:.4rem .8rem;margin:.5rem 0}
summary{cursor:pointer}summary code{word-break:break-all}
.snippet p{margin:.8rem 0 .2rem}
pre{background:#f6f8fa;padding:.5rem;border-radius:4px;overflow-x:auto;margin:0;
white-space:pre-wrap;word-break:break-all}
button{font:inherit;font-size:.8rem;padding:0 .5rem;margin-left:.3rem}
@media (max-width:40rem){#mirrors tr:first-child{display:none}
#mirrors tr{display:block;border-bottom:1px solid #d0d7de;padding:.3rem 0}
#mirrors td{display:inline-block;border:0;padding:0 .6rem 0 0}
#mirrors td.url{display:block;white-space:normal}}
"""

# Copy buttons: the clipboard API where the page is a secure context (https, localhost);
# over plain http on a LAN, selecting the text and the older copy command.
# Live figures: every few seconds (`?refresh=N`; 0 for never) the mirrors, cache and downloads
# are replaced by a fresh copy of the page's, leaving the setup blocks (and any selection in
# them) alone.
_SCRIPT = """
document.addEventListener("click", async (event) => {
  const id = event.target.dataset && event.target.dataset.copy;
  if (!id) return;
  const pre = document.getElementById(id);
  try {
    await navigator.clipboard.writeText(pre.textContent);
  } catch (e) {
    const range = document.createRange();
    range.selectNodeContents(pre);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand("copy");
  }
  event.target.textContent = "Copied";
  setTimeout(() => { event.target.textContent = "Copy"; }, 1500);
});
const every = Number(new URLSearchParams(location.search).get("refresh") ?? 5);
if (every > 0) setInterval(async () => {
  if (document.hidden) return;
  try {
    const response = await fetch(location.href, {cache: "no-store"});
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ["uptime", "mirrors", "cache", "policy", "downloads"]) {
      const now = fresh.getElementById(id);
      if (now) document.getElementById(id).replaceWith(now);
    }
  } catch (e) {}  // the proxy is restarting: try again next time
}, every * 1000);
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pypi-proxy</title><style>{style}</style></head>
<body>
<h1>pypi-proxy</h1>
<p class="sub">version {version}, up <span id="uptime">{uptime}</span> ·
<a href="/-/health">health</a> · <a href="/metrics">metrics</a></p>
<h2>Upstream mirrors</h2>
{mirrors}
<h2>Cache</h2>
{cache}
<h2>Downloads in progress</h2>
{downloads}
<h2>Client setup</h2>
<p class="sub">Point every machine at one index. The first is the default, also served at
<code>/simple/</code>.</p>
{setup}
<script>{script}</script>
</body></html>
"""
