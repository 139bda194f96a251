"""The command line: parse flags into a Config and run a command.

The only module that prints usage or exits. Flags are generated from the
setting declarations in config/settings.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from . import __version__, build
from .config.envvars import environment_layer, unknown_variables
from .config.files import CONFIG_FILE, PROFILE_ENV, default_config_path
from .config.plan import Plan, load_plan
from .config.problems import ConfigError
from .config.settings import SETTINGS, toml_key
from .config.values import ValueProblem

_UNSET: Any = object()
_GROUP_TITLES = {"app": "application", "server": "server"}


def _add_setting_flags(parser: argparse.ArgumentParser, positional_app: bool = True) -> None:
    groups = {name: parser.add_argument_group(title) for name, title in _GROUP_TITLES.items()}
    for f in SETTINGS:
        meta = f.metadata
        if not meta["cli"]:
            continue
        if f.name == "app":
            if positional_app:
                parser.add_argument("app", nargs="?", default=argparse.SUPPRESS, metavar="APP", help=meta["help"])
            continue
        flags = ["--" + toml_key(f.name)] + ([meta["short"]] if meta["short"] else [])
        default = f.default
        shown = ", ".join(default) if isinstance(default, tuple) else default
        help_text = f"{meta['help']} (default: {shown if shown not in (None, ()) else 'none'})"
        if f.default is False:  # a switch: the bare flag turns it on
            groups[meta["group"]].add_argument(
                *flags, dest=f.name, default=argparse.SUPPRESS, action="store_const", const=True, help=meta["help"]
            )
            continue
        groups[meta["group"]].add_argument(
            *flags,
            dest=f.name,
            default=argparse.SUPPRESS,
            action="append" if meta["multiple"] else "store",
            metavar=meta["metavar"] or "VALUE",
            help=help_text,
        )


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration file")
    group.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=None,
        help=f"Read settings from this TOML file (default: ./{CONFIG_FILE} when it exists).",
    )
    group.add_argument(
        "--profile",
        metavar="NAME",
        default=None,
        help=f"Apply [profile.NAME] from the config file (default: ${PROFILE_ENV}).",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral", description="Corral: a production WSGI server.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"corral {__version__} ({build()})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # allow_abbrev=False everywhere: `--setting` must be an error, as a misspelt TOML key is.
    serve = commands.add_parser(
        "serve",
        allow_abbrev=False,
        help="Serve a WSGI app in production.",
        description="Serve a WSGI app in production.",
    )
    _add_setting_flags(serve)
    _add_config_flags(serve)
    dev = commands.add_parser(
        "dev",
        allow_abbrev=False,
        help="Development server: one worker, threads, access log, reload on code changes.",
        description="Development server: one worker, threads, access log, reload on code changes.",
    )
    _add_setting_flags(dev)
    _add_config_flags(dev)
    dev.add_argument(
        "--watch", action="append", default=[], metavar="PATH", help="Also reload when PATH changes (repeatable)."
    )
    check = commands.add_parser(
        "check",
        allow_abbrev=False,
        help="Resolve the config and load the app without serving; non-zero on any problem.",
        description="Resolve config, profile, environment and app imports, print the plan, serve nothing.",
    )
    _add_setting_flags(check)
    _add_config_flags(check)
    init = commands.add_parser(
        "init",
        allow_abbrev=False,
        help=f"Write a {CONFIG_FILE} with dev and prod profiles for the Django project here.",
        description=f"Write a {CONFIG_FILE} with dev and prod profiles for the Django project in this directory.",
    )
    init.add_argument("--force", action="store_true", help=f"Overwrite an existing {CONFIG_FILE}.")
    init.add_argument("--prod-settings", default=None, metavar="MODULE",
                      help="The production settings module for [profile.prod] (default: found beside the settings).")
    init.add_argument("--bind", "-b", dest="bind", action="append", default=[], metavar="ADDRESS",
                      help="The prod profile's address (repeatable; default 127.0.0.1:8000, loopback).")
    init.add_argument("--env-file", default=None, metavar="FILE",
                      help="The prod profile's env file (default: prod.env beside manage.py, written if needed).")
    for name, text in (
        ("status", "Show every site and worker of a running server (pid, state, requests, RSS, age)."),
        ("reload", "Reload the app code with zero failed requests (all sites, or one)."),
        ("stop", "Stop a running server."),
    ):
        control = commands.add_parser(name, help=text, description=text + _CONTROL_HELP, allow_abbrev=False)
        _add_config_flags(control)
        control.add_argument("--bind", "-b", dest="bind", action="append", default=argparse.SUPPRESS, metavar="ADDRESS",
                             help="The server's first --bind, to find its default control socket.")
        control.add_argument("--control-socket", dest="control_socket", default=argparse.SUPPRESS, metavar="PATH",
                             help="The server's control socket.")
        if name == "status":
            control.add_argument("--json", action="store_true", help="Print JSON for scripts.")
        elif name == "reload":
            control.add_argument("site", nargs="?", default=None, metavar="SITE", help="Only this site.")
        else:
            control.add_argument("--graceful", action=argparse.BooleanOptionalAction, default=True,
                                 help="Finish in-flight requests first (default).")
    return parser


_CONTROL_HELP = (
    " The server is found by its control socket: --control-socket, else the one in corral.toml (or --config),"
    " else the default derived from its first --bind."
)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, parsed; flags not given are absent (argparse.SUPPRESS)."""
    changes: dict[str, Any] = {}
    for f in SETTINGS:
        raw = getattr(args, f.name, _UNSET)
        if raw is _UNSET:
            continue
        flag = "APP" if f.name == "app" else "--" + toml_key(f.name)
        parse = f.metadata["parse"]
        try:
            changes[f.name] = tuple(parse(item) for item in raw) if f.metadata["multiple"] else parse(raw)
        except ValueProblem as exc:
            raise UsageError(f"{flag}: {exc}") from None
    return changes


def plan_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Plan:
    """Flags over CORRAL_* variables over the chosen profile over corral.toml (given, or found here)."""
    environ = os.environ if environ is None else environ
    overrides = overrides_from_args(args)
    path = args.config if args.config is not None else default_config_path(os.getcwd())
    profile = args.profile if args.profile is not None else (environ.get(PROFILE_ENV) or None)
    variables = environment_layer(environ)
    try:
        return load_plan(path, profile, overrides, variables)
    except ConfigError as exc:
        if args.profile is None and profile is not None:
            exc.problems.append(f"(the profile was chosen by {PROFILE_ENV}={profile})")
        raise


class UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "init":
        from .commands.init import Choices, init

        choices = Choices(args.prod_settings, tuple(args.bind), args.env_file)
        return init(os.getcwd(), force=args.force, choices=choices)
    try:
        plan = plan_from_args(args)
    except UsageError as exc:
        parser.exit(2, f"corral: error: {exc}\n")
    except ConfigError as exc:
        parser.exit(2, "".join(f"corral: error: {line}\n" for line in exc.problems))
    for warning in unknown_variables(os.environ):
        sys.stderr.write(f"corral: warning: {warning}\n")
    if args.command == "serve":
        from .commands.serve import serve

        return serve(plan.server, plan=plan)
    if args.command == "check":
        from .commands.check import check

        return check(plan)
    if args.command in ("status", "reload", "stop"):
        from .commands import control

        if args.command == "status":
            return control.status(plan.server, args.json)
        if args.command == "reload":
            return control.reload(plan.server, args.site)
        return control.stop(plan.server, args.graceful)
    if args.command == "dev":
        if plan.multi_site:
            parser.exit(
                2, f"corral: error: {plan.source} defines [sites]; corral dev serves one app (use corral serve)\n"
            )
        from .commands.dev import dev  # imported here: the dev extra (watchfiles) is optional

        return dev(plan.server, list(args.watch))
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
