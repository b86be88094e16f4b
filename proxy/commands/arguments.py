"""What every command shares about its command line: the config it works on, the index it
names, and values read like the config's (sizes, durations) with errors naming the option."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..core.config import Config, ConfigError, Index, default_config_path
from ..core.config_yaml import load_config

T = TypeVar("T")


class UsageError(Exception):
    """What the user got wrong, said on stderr with exit status 2."""


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML config file (default: the bundled {default_config_path().name})",
    )


def load(args: argparse.Namespace) -> Config:
    """The config named by `--config`, or the bundled one."""
    try:
        return load_config(args.config or default_config_path())
    except ConfigError as exc:
        raise UsageError(f"config error: {exc}") from None


def index(config: Config, name: str | None) -> Index:
    """The index named by `--index` (None: the default one)."""
    try:
        return config.index(name)
    except ConfigError as exc:
        raise UsageError(f"--index: {exc}") from None


def value_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """A parser that raises ValueError (a size, a duration, a name) as an argparse type:
    argparse then names the option in the message."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert
