"""Which upstreams a project is looked up in."""

from __future__ import annotations

from .config import Route
from .model import NormalizedName


def upstreams_for(routes: tuple[Route, ...], name: NormalizedName) -> tuple[str, ...]:
    """The upstreams of the first route matching `name`, in priority order; none if no route
    matches (the project is then unknown to this proxy)."""
    for route in routes:
        if route.matches(name):
            return route.upstreams
    return ()
