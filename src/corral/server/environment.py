"""Set up a worker process for its app: directory, sys.path and environment."""

from __future__ import annotations

import os
import sys

from ..config import Config
from ..config.dotenv import DotenvError, read_dotenv
from ..config.values import ValueProblem, parse_env_pair
from ..loading import AppLoadError


def app_environment(config: Config) -> dict[str, str]:
    """The variables the app gets on top of the inherited ones, in precedence order."""
    variables: dict[str, str] = {}
    if config.env_file:
        try:
            variables.update(read_dotenv(config.env_file))
        except DotenvError as exc:
            raise AppLoadError(str(exc)) from None
    for pair in config.env:
        try:
            key, value = parse_env_pair(pair)
        except ValueProblem as exc:
            raise AppLoadError(f"--env {pair!r}: {exc}") from None
        variables[key] = value
    if config.settings:
        variables["DJANGO_SETTINGS_MODULE"] = config.settings
    return variables


def prepare_process(config: Config) -> None:
    if config.chdir:
        try:
            os.chdir(config.chdir)
        except OSError as exc:
            raise AppLoadError(f"cannot change directory to {config.chdir!r}: {exc.strerror}") from None
    for path in reversed(config.pythonpath):
        sys.path.insert(0, os.path.abspath(path))
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # like `python -m`: the working directory is importable
    os.environ.update(app_environment(config))
