"""Which upstreams a project is looked up in."""

from __future__ import annotations

from fnmatch import fnmatchcase

from .config import Route
from .model import NormalizedName


def route_for(routes: tuple[Route, ...], name: NormalizedName) -> Route | None:
    """The first route matching `name`; None if none does (the project is then unknown to
    this proxy)."""
    return next((route for route in routes if route.matches(name)), None)


def upstreams_for(routes: tuple[Route, ...], name: NormalizedName) -> tuple[str, ...]:
    """The upstreams `name` is looked up in, in priority order."""
    route = route_for(routes, name)
    return route.upstreams if route else ()


def explain(routes: tuple[Route, ...], name: NormalizedName) -> str:
    """Which route a project takes and why, in words, for `pypi-proxy routes`."""
    for number, route in enumerate(routes):
        matched = next((p for p in route.patterns if fnmatchcase(name, p)), None)
        if matched is not None:
            order = " then ".join(route.upstreams)
            how = (
                "the first of them that has it serves all its files"
                if route.strategy == "first"
                else "files merged from all of them, the earlier winning on a filename"
            )
            return f"{name}: routes[{number}] (matches {matched!r}): {order}; {how}"
    return f"{name}: no route matches: unknown to this index (404)"
