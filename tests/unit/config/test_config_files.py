"""corral.toml at the server level: keys, types, profiles, precedence and every error message."""
# ruff: noqa: E501  (expected messages are kept whole, one per line, so they read as the user sees them)

from __future__ import annotations

import os

import pytest

from config_problems import only_problem, problems_of
from corral.config import Config, ConfigError, load_plan
from corral.config.files import default_config_path
from corral.config.problems import did_you_mean

# -- reading -----------------------------------------------------------------------


def test_no_file_means_defaults_plus_flags() -> None:
    plan = load_plan(None, None, {"workers": 3, "env": ("A=1", "A=2", "B=x=y")})
    assert plan.server == Config(workers=3, env=("A=2", "B=x=y"))
    assert plan.source is None and not plan.multi_site
    assert len(plan.sites) == 1 and plan.sites[0].config is plan.server and plan.sites[0].default


def test_every_kind_of_value(toml) -> None:
    path = toml(
        """
        app = "basic:hello"
        bind = ["127.0.0.1:9000", "unix:/tmp/x.sock"]
        workers = 4
        threads = 2
        max-body-size = "10M"
        max-header-size = 4096
        keepalive-timeout = 2
        body-timeout = 1.5
        log-level = "WARNING"
        env = { GREETING = "hi", EMPTY = "" }
        """
    )
    server = load_plan(path).server
    assert server.app == "basic:hello"
    assert server.bind == ("127.0.0.1:9000", "unix:/tmp/x.sock")
    assert (server.workers, server.threads) == (4, 2)
    assert server.max_body_size == 10 * 1024 * 1024 and server.max_header_size == 4096
    assert server.keepalive_timeout == 2.0 and server.body_timeout == 1.5
    assert server.log_level == "warning"
    assert server.env == ("GREETING=hi", "EMPTY=")


def test_relative_paths_are_relative_to_the_file(toml, tmp_path) -> None:
    path = toml(
        """
        chdir = "project"
        pythonpath = ["src", "/abs/lib"]
        env-file = "../secrets.env"
        access-log = "-"
        """
    )
    server = load_plan(path).server
    assert server.chdir == str(tmp_path / "project")
    assert server.pythonpath == (str(tmp_path / "src"), "/abs/lib")
    assert server.env_file == os.path.normpath(tmp_path / ".." / "secrets.env")
    assert server.access_log == "-"  # stdout, not a file called "-"


def test_default_config_path_only_when_present(tmp_path) -> None:
    assert default_config_path(str(tmp_path)) is None
    (tmp_path / "corral.toml").write_text("")
    assert default_config_path(str(tmp_path)) == str(tmp_path / "corral.toml")


def test_unreadable_file(tmp_path) -> None:
    missing = str(tmp_path / "nope.toml")
    assert only_problem(missing) == f"{missing}: cannot read config file: No such file or directory"


def test_invalid_toml_names_file_and_line(toml) -> None:
    path = toml("workers = 2\nbind = [1,,]\n")
    assert only_problem(path) == f"{path}: invalid TOML: Invalid value (at line 2, column 11)"


# -- unknown keys and wrong types --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("worker = 2", 'worker: unknown key (did you mean "workers"?)'),
        ("max_body_size = 1", 'max_body_size: unknown key (did you mean "max-body-size"?)'),
        ("keepalive = 1", 'keepalive: unknown key (did you mean "keepalive-timeout"?)'),
        ("zebra = 1", "zebra: unknown key"),
        ("hosts = []", "hosts: is a site key; put it in a [sites.NAME] table"),
    ],
)
def test_unknown_top_level_keys(toml, text: str, expected: str) -> None:
    path = toml(text)
    assert only_problem(path) == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('workers = "4"', "workers: expected a whole number, got string '4'"),
        ("workers = 0", "workers: expected a number of at least 1, got 0"),
        ("workers = true", "workers: expected a whole number, got boolean true"),
        ("workers = 2.5", "workers: expected a whole number, got float 2.5"),
        ('bind = "127.0.0.1:80"', "bind: expected an array of strings, got string '127.0.0.1:80'"),
        ("bind = [80]", "bind: expected a string, got integer 80"),
        ("bind = [{ host = 'x' }]", "bind: expected a string, got table"),
        ("app = ['a']", "app: expected a string, got array"),
        ('max-body-size = "10 potatoes"', "max-body-size: expected a size such as 65536, 64k or 10M, got '10 potatoes'"),
        ("max-body-size = -1", "max-body-size: a size cannot be negative"),
        ("max-body-size = 1.5", "max-body-size: expected a size such as 65536 or \"10M\", got float 1.5"),
        ('keepalive-timeout = "5"', "keepalive-timeout: expected a number of seconds, got string '5'"),
        ("keepalive-timeout = 0", "keepalive-timeout: expected a positive number of seconds, got 0.0"),
        ('log-level = "loud"', "log-level: expected one of debug, info, warning, error, critical, got 'loud'"),
        ("log-level = 1", "log-level: expected one of 'debug', 'info', 'warning', 'error', 'critical', got integer 1"),
        ('env = ["A=1"]', 'env: expected a table such as env = { KEY = "value" }, got array'),
        ("env = { DEBUG = 1 }", 'env: DEBUG: expected a string (write DEBUG = "1"), got integer 1'),
        ("env = { DEBUG = true }", 'env: DEBUG: expected a string (write DEBUG = "true"), got boolean true'),
        ('env = { "1BAD" = "x" }', "env: '1BAD' is not a valid environment variable name"),
        ("access-log = 1979-05-27", "access-log: expected a string, got date 1979-05-27"),
    ],
)
def test_wrong_types_and_values(toml, text: str, expected: str) -> None:
    path = toml(text)
    assert only_problem(path) == f"{path}: {expected}"


def test_all_problems_are_reported_at_once(toml) -> None:
    path = toml(
        """
        worker = 2
        threads = "2"

        [profile.prod]
        bnid = ["0.0.0.0:80"]
        """
    )
    assert problems_of(path) == [
        f'{path}: worker: unknown key (did you mean "workers"?)',
        f"{path}: threads: expected a whole number, got string '2'",
        f'{path}: [profile.prod] bnid: unknown key (did you mean "bind"?)',
    ]


# -- profiles ----------------------------------------------------------------------------

PROFILES = """
    settings = "site.settings"
    bind = ["127.0.0.1:8000"]
    workers = 2
    env = { SHARED = "top", ONLY_TOP = "1" }

    [profile.dev]
    settings = "site.settings.dev"
    env = { SHARED = "dev" }

    [profile.prod]
    settings = "site.settings.prod"
    bind = ["0.0.0.0:80", "0.0.0.0:81"]
    workers = 8
    env = { SHARED = "prod", ONLY_PROD = "1" }
"""


def test_without_a_profile_only_the_top_level_applies(toml) -> None:
    server = load_plan(toml(PROFILES)).server
    assert (server.settings, server.workers, server.bind) == ("site.settings", 2, ("127.0.0.1:8000",))
    assert server.env == ("SHARED=top", "ONLY_TOP=1")


def test_a_profile_overrides_the_top_level_and_env_merges(toml) -> None:
    plan = load_plan(toml(PROFILES), "prod")
    assert plan.profile == "prod"
    server = plan.server
    assert (server.settings, server.workers, server.bind) == ("site.settings.prod", 8, ("0.0.0.0:80", "0.0.0.0:81"))
    assert server.env == ("SHARED=prod", "ONLY_TOP=1", "ONLY_PROD=1")
    dev = load_plan(toml(PROFILES), "dev").server
    assert (dev.settings, dev.workers, dev.env) == ("site.settings.dev", 2, ("SHARED=dev", "ONLY_TOP=1"))


def test_flags_override_the_profile(toml) -> None:
    cli = {"workers": 3, "bind": ("127.0.0.1:0",), "env": ("SHARED=flag", "NEW=1")}
    server = load_plan(toml(PROFILES), "prod", cli).server
    assert (server.settings, server.workers, server.bind) == ("site.settings.prod", 3, ("127.0.0.1:0",))
    assert dict(p.split("=", 1) for p in server.env) == {"SHARED": "flag", "ONLY_TOP": "1", "ONLY_PROD": "1", "NEW": "1"}


def test_the_plan_records_which_settings_were_given(toml) -> None:
    assert load_plan(toml(PROFILES), "prod", {"threads": 2}).given == {"settings", "bind", "workers", "env", "threads"}
    assert load_plan(None, None, {"access_log": "-"}).given == {"access_log"}


def test_unknown_profile_lists_the_available_ones(toml) -> None:
    path = toml(PROFILES)
    assert only_problem(path, "staging") == f"{path}: no profile 'staging'; available profiles: dev, prod"


def test_unknown_profile_when_there_are_none(toml) -> None:
    path = toml("workers = 1")
    assert only_problem(path, "prod") == f"{path}: no profile 'prod'; available profiles: none (add a [profile.NAME] table)"


def test_profile_without_a_config_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_plan(None, "prod")
    assert str(info.value) == "profile 'prod' chosen, but there is no config file (corral.toml or --config)"


def test_every_profile_is_checked_not_only_the_chosen_one(toml) -> None:
    path = toml(
        """
        [profile.dev]
        workers = 1
        [profile.prod]
        workers = "many"
        """
    )
    assert only_problem(path, "dev") == f"{path}: [profile.prod] workers: expected a whole number, got string 'many'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('profile = "prod"', "profile: expected tables such as [profile.dev], got string 'prod'"),
        ("profile = { prod = 1 }", "profile.prod: expected a table [profile.prod], got integer 1"),
        ("[profile.prod.profile.x]\nworkers = 1", "[profile.prod] profile: profiles cannot be nested; [profile.NAME] tables belong at the top level"),
        ("[profile.prod]\nworker = 1", '[profile.prod] worker: unknown key (did you mean "workers"?)'),
        ("[profile.prod]\nworkers = 0", "[profile.prod] workers: expected a number of at least 1, got 0"),
        ('[profile."my prod"]\nworker = 1', '[profile."my prod"] worker: unknown key (did you mean "workers"?)'),
    ],
)
def test_profile_table_errors(toml, text: str, expected: str) -> None:
    path = toml(text)
    assert only_problem(path) == f"{path}: {expected}"


def test_did_you_mean() -> None:
    assert did_you_mean("threds", ["threads", "workers"]) == ' (did you mean "threads"?)'
    assert did_you_mean("max_headers", ["max-headers", "max-header-size"]) == ' (did you mean "max-headers"?)'
    assert did_you_mean("qqq", ["threads"]) == ""
