"""Which upstreams a project is looked up in, and how their pages make one page."""

from __future__ import annotations

import dataclasses

from .config import Index, Route
from .model import FileLink, NormalizedName, ProjectPage
from .policy import Policy


def route_for(routes: tuple[Route, ...], name: NormalizedName) -> Route | None:
    """The first route matching `name`; None if none does (the project is then unknown to
    this proxy)."""
    return next((route for route in routes if route.pattern_matching(name) is not None), None)


def policy_for(index: Index, name: NormalizedName) -> Policy:
    """The policy for a project: its route's, or the index's for a name no route takes."""
    route = route_for(index.routes, name)
    return index.policy if route is None else route.policy


def explain(routes: tuple[Route, ...], name: NormalizedName) -> str:
    """Which route a project takes and why, in words, for `pypi-proxy routes`."""
    for number, route in enumerate(routes):
        matched = route.pattern_matching(name)
        if matched is not None:
            order = " then ".join(route.upstreams)
            how = (
                "the first of them that has it serves all its files"
                if route.strategy == "first"
                else "files merged from all of them, the earlier winning on a filename"
            )
            return f"{name}: routes[{number}] (matches {matched!r}): {order}; {how}"
    return f"{name}: no route matches: unknown to this index (404)"


def union(pages: list[ProjectPage]) -> ProjectPage:
    """Every file of every page, in priority order; a filename listed by several upstreams is
    taken from the first (the same name with other bytes is never mixed in). What is said of
    the project itself (status, tracks) is the first upstream's alone."""
    files: dict[str, FileLink] = {}
    for page in pages:
        for link in page.files:
            files.setdefault(link.filename, link)
    return dataclasses.replace(pages[0], files=tuple(files.values()), source="")
