"""CORRAL_* variables: derived from the declarations, between the file and the flags."""

from __future__ import annotations

import pytest

from corral.cli import build_parser, main, plan_from_args
from corral.config import ConfigError
from corral.config.envvars import OTHER_VARIABLES, VARIABLES, environment_layer, unknown_variables, variable
from corral.config.settings import SETTINGS


def plan(argv: list[str], environ: dict[str, str]):  # type: ignore[no-untyped-def]
    return plan_from_args(build_parser().parse_args(argv), environ)


@pytest.fixture
def project(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    (tmp_path / "corral.toml").write_text(
        "workers = 2\nthreads = 2\nbacklog = 100\n"
        "[profile.prod]\nworkers = 8\nthreads = 8\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_names_are_derived_from_the_keys() -> None:
    assert variable("max_body_size") == "CORRAL_MAX_BODY_SIZE"
    assert variable("workers") == "CORRAL_WORKERS"
    # every setting but the tables has one, and none takes a name Corral uses for something else
    assert {f.name for f in VARIABLES.values()} == {f.name for f in SETTINGS} - {"env", "hooks"}
    assert not VARIABLES.keys() & OTHER_VARIABLES


def test_precedence_flag_over_environment_over_profile_over_file_over_default(project) -> None:  # type: ignore[no-untyped-def]
    env = {"CORRAL_WORKERS": "5", "CORRAL_THREADS": "6", "CORRAL_BACKLOG": "7", "CORRAL_MAX_HEADERS": "9"}
    result = plan(["serve", "--profile", "prod", "--workers", "3"], env)
    server = result.server
    assert server.workers == 3  # the flag wins over the variable
    assert server.threads == 6  # the variable wins over the profile
    assert server.backlog == 7  # ... and over the top level
    assert server.max_headers == 9  # ... and over the default
    assert server.max_connections == 1000  # nothing set it: the default
    assert result.from_environment == {"threads", "backlog", "max_headers"}  # workers came from the flag
    assert {"workers", "threads", "backlog", "max_headers"} <= result.given
    # without the variables, the profile and the file apply again
    assert plan(["serve", "--profile", "prod"], {}).server.threads == 8
    assert plan(["serve"], {}).server.backlog == 100


def test_without_a_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    result = plan(["serve", "--threads", "2"], {"CORRAL_WORKERS": "4", "CORRAL_THREADS": "3"})
    assert (result.server.workers, result.server.threads) == (4, 2)
    assert result.from_environment == {"workers"}


def test_values_parse_as_the_flags_do() -> None:
    layer = environment_layer(
        {
            "CORRAL_MAX_BODY_SIZE": "10M",
            "CORRAL_HEADER_TIMEOUT": "2.5",
            "CORRAL_REUSE_PORT": "1",
            "CORRAL_PROXY_PROTOCOL": "false",
            "CORRAL_BIND": "0.0.0.0:8000, unix:/run/corral.sock",
            "CORRAL_APP": "basic:hello",
            "CORRAL_KEEPALIVE_TIMEOUT": "",  # empty counts as unset
        }
    )
    assert layer == {
        "max_body_size": 10 * 1024 * 1024,
        "header_timeout": 2.5,
        "reuse_port": True,
        "proxy_protocol": False,
        "bind": ("0.0.0.0:8000", "unix:/run/corral.sock"),
        "app": "basic:hello",
    }


def test_bad_values_name_the_variable_one_line_each() -> None:
    with pytest.raises(ConfigError) as info:
        environment_layer({"CORRAL_WORKERS": "many", "CORRAL_HEADER_TIMEOUT": "0", "CORRAL_BIND": "a,,b"})
    assert info.value.problems == [
        "environment variable CORRAL_BIND='a,,b': expected a comma-separated list without empty items",
        "environment variable CORRAL_WORKERS='many': expected a whole number, got 'many'",
        "environment variable CORRAL_HEADER_TIMEOUT='0': expected a positive number of seconds, got 0.0",
    ]


def test_bad_value_from_the_command_line(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CORRAL_MAX_BODY_SIZE", "big")
    with pytest.raises(SystemExit) as info:
        main(["check"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "corral: error: environment variable CORRAL_MAX_BODY_SIZE='big': "
        "expected a size such as 65536, 64k or 10M, got 'big'\n"
    )


def test_unknown_variables_warn_with_a_suggestion() -> None:
    environ = {"CORRAL_WORKRS": "2", "CORRAL_PROFILE": "prod", "CORRAL_NO_EXTENSIONS": "1", "HOME": "/root"}
    assert unknown_variables(environ) == [
        'environment variable CORRAL_WORKRS is not a Corral setting (did you mean "CORRAL_WORKERS" or '
        '"CORRAL_THREADS"?); ignored'
    ]


def test_app_variables_conflict_with_sites(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "corral.toml").write_text('[sites.blog]\napp = "basic:hello"\ndefault = true\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="CORRAL_APP set in the environment, but this file defines"):
        plan(["serve"], {"CORRAL_APP": "basic:hello"})
    # server settings from the environment apply to every site
    result = plan(["serve"], {"CORRAL_THREADS": "3"})
    assert result.sites[0].config.threads == 3


def test_check_shows_which_values_came_from_the_environment(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from corral.commands.check import _print_settings

    monkeypatch.chdir(tmp_path)
    _print_settings(plan(["check", "--threads", "2"], {"CORRAL_WORKERS": "4", "CORRAL_THREADS": "3"}))
    lines = capsys.readouterr().out.splitlines()
    assert "  workers              4  (from CORRAL_WORKERS)" in lines
    assert "  threads              2" in lines
