"""Several upstreams' pages of one project into one page (the `union` strategy)."""

from __future__ import annotations

from .model import FileLink, ProjectPage


def union(pages: list[ProjectPage]) -> ProjectPage:
    """Every file of every page, in priority order; a filename listed by several upstreams is
    taken from the first (the same name with other bytes is never mixed in)."""
    files: dict[str, FileLink] = {}
    for page in pages:
        for link in page.files:
            files.setdefault(link.filename, link)
    return ProjectPage(name=pages[0].name, files=tuple(files.values()))
