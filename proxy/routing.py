"""Which upstreams a project is looked up in."""

from __future__ import annotations

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
