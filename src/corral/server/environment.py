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


def prepare_process(config: Config) -> dict[str, str]:
    """Directory, sys.path and environment for the app; returns the variables it set."""
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
    variables = app_environment(config)
    os.environ.update(variables)
    return variables


def drop_privileges(user: str | None, group: str | None) -> None:
    """Run as the site's user/group (needs root); a no-op when neither is set."""
    if user is None and group is None:
        return
    import grp
    import pwd

    try:
        uid = pwd.getpwnam(user).pw_uid if user else os.getuid()
        gid = grp.getgrnam(group).gr_gid if group else (pwd.getpwnam(user).pw_gid if user else os.getgid())
    except KeyError as exc:
        raise AppLoadError(f"unknown user or group {exc.args[0]}") from None
    if (uid, gid) == (os.getuid(), os.getgid()):
        return
    if os.geteuid() != 0:
        raise AppLoadError(f"switching to user {user!r}/group {group!r} needs Corral to be started as root")
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    home = pwd.getpwuid(uid).pw_dir
    os.environ.update(HOME=home, USER=pwd.getpwuid(uid).pw_name, LOGNAME=pwd.getpwuid(uid).pw_name)
