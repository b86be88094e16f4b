"""Parsing index pages: the proxy's linear tag scanner beside CPython's `HTMLParser` (which
the proxy used before), on a real page of the official index and on hostile ones.

    python bench/parse.py          # prints a Markdown table (the latest: parse-results.md)

Each figure is the best of a few runs, both parsers in the same process, one after the other.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.repo import OFFICIAL_INDEX  # noqa: E402

from proxy.core.html_tags import tags  # noqa: E402

# HTMLParser needs minutes for these at the sizes a page may have; kept small enough to end.
HOSTILE = {
    "unclosed `<a ` (30 KB)": "<a " * 10_000,
    "unclosed comments (80 KB)": "<!--" * 20_000,
}


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += tag in ("a", "base", "meta")


def html_parser(text: str) -> int:
    parser = _Anchors()
    parser.feed(text)
    parser.close()
    return parser.found


def scanner(text: str) -> int:
    return sum(1 for _ in tags(text))


def best(parse: Callable[[str], int], text: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        parse(text)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    numpy = (OFFICIAL_INDEX / "numpy.html").read_text(encoding="utf-8")
    pages = {f"numpy's page ({len(numpy) // 1024} KiB, 4,415 links)": (numpy, 5)}
    pages |= {name: (text, 1) for name, text in HOSTILE.items()}
    print("| page | linear scanner | HTMLParser | ratio |\n|---|---|---|---|")
    for name, (text, runs) in pages.items():
        ours, theirs = best(scanner, text, runs), best(html_parser, text, runs)
        print(f"| {name} | {ours * 1000:.1f} ms | {theirs * 1000:.1f} ms | {ours / theirs:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
