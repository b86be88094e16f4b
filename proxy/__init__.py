"""pypi-proxy: a caching PEP 503/691 package-index proxy for labs, classrooms and CI farms."""

from .app import create_app
from .config import Config, ConfigError, load_config

__all__ = ["Config", "ConfigError", "create_app", "load_config"]
