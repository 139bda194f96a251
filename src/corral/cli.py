"""The command line: parse flags into a Config and run a command.

The only module that prints usage or exits. Flags are generated from the
setting declarations in config/settings.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .config.settings import SETTINGS, Config, toml_key
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
        groups[meta["group"]].add_argument(
            *flags,
            dest=f.name,
            default=argparse.SUPPRESS,
            action="append" if meta["multiple"] else "store",
            metavar=meta["metavar"] or "VALUE",
            help=help_text,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corral", description="Corral: a production WSGI server.")
    parser.add_argument("--version", action="version", version=f"corral {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="Serve a WSGI app in production.", description="Serve a WSGI app in production.")
    _add_setting_flags(serve)
    check = commands.add_parser("check", help="Resolve the config and load the app without serving; non-zero on any problem.")
    _add_setting_flags(check)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """Defaults, overridden by every flag that was given."""
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
    return Config(**changes)


class UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        config = config_from_args(args)
    except UsageError as exc:
        parser.exit(2, f"corral: error: {exc}\n")
    if args.command == "serve":
        from .commands.serve import serve

        return serve(config)
    if args.command == "check":
        from .commands.check import check

        return check(config)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
