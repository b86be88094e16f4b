"""The proxy's version, as installed, and the User-Agent it sends upstream."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def proxy_version() -> str:
    try:
        return version("pypi-proxy")
    except PackageNotFoundError:
        return "dev"


def user_agent() -> str:
    return f"pypi-proxy/{proxy_version()}"
