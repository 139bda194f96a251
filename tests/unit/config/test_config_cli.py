"""The command line's side of configuration: which file, which profile, flags over the file."""

from __future__ import annotations

import pytest

from corral.cli import UsageError, build_parser, plan_from_args
from corral.config import ConfigError


def plan(argv: list[str], environ: dict[str, str] | None = None):
    return plan_from_args(build_parser().parse_args(argv), environ or {})


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "corral.toml").write_text(
        'app = "basic:hello"\nworkers = 2\n[profile.prod]\nworkers = 8\nbind = ["0.0.0.0:80"]\n'
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_corral_toml_in_the_working_directory_is_used(project) -> None:
    result = plan(["serve"])
    assert result.source == str(project / "corral.toml") and result.server.workers == 2


def test_profile_flag_and_env_var(project) -> None:
    assert plan(["serve", "--profile", "prod"]).server.workers == 8
    assert plan(["check"], {"CORRAL_PROFILE": "prod"}).server.workers == 8
    assert plan(["check"], {"CORRAL_PROFILE": ""}).server.workers == 2  # empty means unset
    # the flag wins over the environment
    with pytest.raises(ConfigError, match="no profile 'nope'"):
        plan(["serve", "--profile", "nope"], {"CORRAL_PROFILE": "prod"})


def test_a_bad_profile_from_the_environment_says_where_it_came_from(project) -> None:
    with pytest.raises(ConfigError) as info:
        plan(["serve"], {"CORRAL_PROFILE": "staging"})
    assert info.value.problems[-1] == "(the profile was chosen by CORRAL_PROFILE=staging)"


def test_flags_override_the_file(project) -> None:
    server = plan(["serve", "--profile", "prod", "-w", "3", "--bind", "127.0.0.1:0", "other:app"]).server
    assert (server.workers, server.bind, server.app) == (3, ("127.0.0.1:0",), "other:app")


def test_explicit_config_file(project, tmp_path_factory) -> None:
    other = tmp_path_factory.mktemp("elsewhere") / "x.toml"
    other.write_text("workers = 5\n")
    assert plan(["serve", "--config", str(other)]).server.workers == 5
    assert plan(["serve", "-c", str(other)]).source == str(other)


def test_no_file_and_no_profile(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert plan(["serve", "basic:hello"]).source is None
    with pytest.raises(ConfigError, match="there is no config file"):
        plan(["serve"], {"CORRAL_PROFILE": "prod"})


def test_bad_flag_values_are_usage_errors(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"--workers: expected a whole number, got 'x'"):
        plan(["serve", "--workers", "x"])
    with pytest.raises(UsageError, match=r"--env: expected KEY=VALUE, got 'NOEQUALS'"):
        plan(["serve", "--env", "NOEQUALS"])


def test_dev_has_watch_and_init_has_force() -> None:
    args = build_parser().parse_args(["dev", "--watch", "a", "--watch", "b/c", "--profile", "dev"])
    assert args.watch == ["a", "b/c"] and args.profile == "dev"
    assert build_parser().parse_args(["dev"]).watch == []
    assert build_parser().parse_args(["init", "--force"]).force is True
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--watch", "x"])
