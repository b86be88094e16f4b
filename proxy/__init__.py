"""pypi-proxy: a caching PEP 503/691 package-index proxy for labs, classrooms and CI farms."""

from .core.config import Config, ConfigError
from .core.config_yaml import load_config
from .server.app import create_app

__all__ = ["Config", "ConfigError", "create_app", "load_config"]
