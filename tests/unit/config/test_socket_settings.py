"""--socket-mode, --socket-owner and --reuse-port: parsing on the command line and in corral.toml."""
# ruff: noqa: E501  (expected messages are kept whole, one per line, so they read as the user sees them)

from __future__ import annotations

import pytest

from config_problems import only_problem
from corral.cli import UsageError, build_parser, overrides_from_args
from corral.config import Config, load_plan
from corral.config.values import ValueProblem, octal_mode, parse_file_mode, parse_owner


def test_defaults() -> None:
    config = Config()
    assert (config.socket_mode, config.socket_owner, config.reuse_port) == ("0660", None, False)
    assert octal_mode(config.socket_mode) == 0o660


@pytest.mark.parametrize(
    ("text", "mode"),
    [("660", "0660"), ("0660", "0660"), ("0o660", "0660"), ("0O600", "0600"), ("777", "0777"), (" 0644 ", "0644"),
     ("0", "0000"), ("7", "0007")],
)
def test_mode_forms(text: str, mode: str) -> None:
    assert parse_file_mode(text) == mode


@pytest.mark.parametrize("text", ["", "abc", "0x1b6", "0880", "8", "1777", "04755", "0o", "66 0", "-660", "+660"])
def test_bad_modes(text: str) -> None:
    with pytest.raises(ValueProblem, match="expected permission bits in octal"):
        parse_file_mode(text)


@pytest.mark.parametrize(
    ("text", "owner"),
    [("nobody", "nobody"), ("nobody:nogroup", "nobody:nogroup"), (":www-data", ":www-data"), ("0:33", "0:33"),
     (" corral:www-data ", "corral:www-data"), ("svc.web:web$", "svc.web:web$")],
)
def test_owner_forms(text: str, owner: str) -> None:
    assert parse_owner(text) == owner


@pytest.mark.parametrize("text", ["", ":", "nobody:", "a b", "nobody:no group", "a:b:c", "-x"])
def test_bad_owners(text: str) -> None:
    with pytest.raises(ValueProblem):
        parse_owner(text)


def test_flags() -> None:
    args = build_parser().parse_args(
        ["serve", "--socket-mode", "600", "--socket-owner", "nobody:nogroup", "--reuse-port"]
    )
    assert overrides_from_args(args) == {"socket_mode": "0600", "socket_owner": "nobody:nogroup", "reuse_port": True}


def test_a_bad_mode_flag_is_a_usage_error() -> None:
    args = build_parser().parse_args(["serve", "--socket-mode", "rw-rw----"])
    with pytest.raises(UsageError, match=r"--socket-mode: expected permission bits in octal, such as \"0660\""):
        overrides_from_args(args)


def test_toml(toml) -> None:
    path = toml('socket-mode = "0o600"\nsocket-owner = "nobody:nogroup"\nreuse-port = true\n')
    server = load_plan(path).server
    assert (server.socket_mode, server.socket_owner, server.reuse_port) == ("0600", "nobody:nogroup", True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("socket-mode = 660", 'socket-mode: expected an octal string such as "0660" (a TOML integer would be decimal), got integer 660'),
        ("socket-mode = 0o660", "socket-mode: expected an octal string such as \"0660\" (a TOML integer would be decimal), got integer 432"),
        ('socket-mode = "rw"', "socket-mode: expected permission bits in octal, such as \"0660\", got 'rw'"),
        ("socket-owner = 65534", 'socket-owner: expected a "USER", "USER:GROUP" or ":GROUP" string, got integer 65534'),
        ('reuse-port = "yes"', "reuse-port: expected true or false, got string 'yes'"),
    ],
)
def test_toml_errors(toml, body: str, message: str) -> None:
    path = toml(body)
    assert only_problem(path) == f"{path}: {message}"


def test_sites_cannot_set_them(toml) -> None:
    path = toml('[sites.blog]\napp = "blog:app"\ndefault = true\nsocket-mode = "0600"\n')
    assert "is a server-wide setting" in only_problem(path)
