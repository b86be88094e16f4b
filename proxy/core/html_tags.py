"""The few tags of an index page (`a`, `base`, `meta`) and their attributes, found in time
linear in the page's length.

CPython's `HTMLParser` is quadratic on some inputs (CVE-2025-6069: 60 KB of unclosed `<a `
take it a minute), and an index page is untrusted input. Here every step either consumes what
it looked at or moves past one character, so a hostile page costs what a normal one does.
Comments are skipped; other markup is text, as an index page's anchors need nothing more.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

Attributes = dict[str, str]

_START = re.compile(r"<(?:(a|base|meta)(?=[\s/>])|!--)", re.IGNORECASE)
_SPACE = re.compile(r"[\s/]*")
_ATTRIBUTE = re.compile(
    r"""([^\s"'<>/=]+)(?:[ \t\r\n\f]*=[ \t\r\n\f]*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?"""
)


def tags(text: str) -> Iterator[tuple[str, Attributes]]:
    """Each `a`, `base` and `meta` tag, lowercased, with its attributes (names lowercased,
    values unescaped, the first of a repeated name kept, a bare attribute as "")."""
    position = 0
    while (start := _START.search(text, position)) is not None:
        if start[1] is None:  # a comment: to its end, or the page's
            end = text.find("-->", start.end())
            if end < 0:
                return
            position = end + 3
            continue
        attributes, position = _attributes(text, start.end())
        yield start[1].lower(), attributes


def _attributes(text: str, position: int) -> tuple[Attributes, int]:
    """The attributes from `position` to the end of the tag, and where scanning goes on."""
    found: Attributes = {}
    while position < len(text):
        position = _SPACE.match(text, position).end()  # type: ignore[union-attr]
        if position >= len(text):
            break
        char = text[position]
        if char == ">":
            return found, position + 1
        if char == "<":  # a tag never closed: the next one starts here
            return found, position
        match = _ATTRIBUTE.match(text, position)
        if match is None:  # a stray quote or '=': past it
            position += 1
            continue
        name, *values = match.groups()
        value = next((v for v in values if v is not None), "")
        found.setdefault(name.lower(), html.unescape(value))
        position = match.end()
    return found, position
