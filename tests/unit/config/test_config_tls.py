"""TLS settings: which go together, from flags and from corral.toml."""
# ruff: noqa: E501  (expected messages are kept whole, as the user sees them)

from __future__ import annotations

import pytest

from config_problems import only_problem
from corral.cli import UsageError, build_parser, plan_from_args
from corral.config import ConfigError, load_plan


def test_flags_parse_and_anchor(toml) -> None:
    path = toml('certfile = "tls/cert.pem"\nkeyfile = "tls/key.pem"\nca-certs = "tls/ca.pem"\nclient-cert = "Required"\n')
    config = load_plan(path).server
    base = path.rsplit("/", 1)[0]
    assert (config.certfile, config.keyfile, config.ca_certs) == (f"{base}/tls/cert.pem", f"{base}/tls/key.pem", f"{base}/tls/ca.pem")
    assert config.client_cert == "required"


def test_defaults_are_plain_http() -> None:
    config = load_plan(None).server
    assert (config.certfile, config.keyfile, config.ca_certs, config.client_cert) == (None, None, None, "none")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--keyfile", "k.pem"], "keyfile is set but certfile is not: HTTPS needs the certificate (--certfile)"),
        (["--ca-certs", "ca.pem"], "ca-certs is set but certfile is not: client certificates need HTTPS (--certfile)"),
        (["--client-cert", "optional"], "client-cert = optional needs HTTPS: set certfile (--certfile)"),
        (["--certfile", "c.pem", "--client-cert", "required"], "client-cert = required needs ca-certs: the CA certificates that sign client certificates"),
        (["--certfile", "c.pem", "--ca-certs", "ca.pem"], "ca-certs is only used to verify client certificates: set client-cert to optional or required"),
    ],
)
def test_settings_that_do_not_go_together(argv: list[str], expected: str) -> None:
    args = build_parser().parse_args(["serve", *argv])
    with pytest.raises(ConfigError) as info:
        plan_from_args(args, environ={})
    assert info.value.problems == [expected]


@pytest.mark.parametrize("argv", [["--proxy-protocol"], ["--bind", "proxy:127.0.0.1:8443"], ["--bind", "127.0.0.1:8000", "--bind", "proxy:[::1]:8443"]])
def test_tls_goes_with_the_proxy_protocol(argv: list[str]) -> None:
    # A load balancer passing TLS through with a PROXY header in front (tls_listener.py reads both).
    args = build_parser().parse_args(["serve", "--certfile", "c.pem", *argv])
    config = plan_from_args(args, environ={}).server
    assert config.certfile is not None and config.certfile.endswith("c.pem")


def test_tls_with_the_proxy_protocol_in_corral_toml(toml) -> None:
    config = load_plan(toml('certfile = "c.pem"\nproxy-protocol = true\n')).server
    assert config.proxy_protocol and config.certfile is not None


def test_client_cert_mode_is_checked() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "--certfile", "c.pem", "--client-cert", "sometimes"])
    with pytest.raises(UsageError, match="expected one of none, optional, required, got 'sometimes'"):
        plan_from_args(args, environ={})


def test_file_problem_names_the_file(toml) -> None:
    path = toml('keyfile = "k.pem"\n')
    assert only_problem(path) == f"{path}: keyfile is set but certfile is not: HTTPS needs the certificate (--certfile)"


def test_tls_with_sites_is_refused(toml) -> None:
    path = toml(
        """
        certfile = "c.pem"
        [sites.blog]
        app = "blog:app"
        [sites.shop]
        app = "shop:app"
        """
    )
    assert only_problem(path) == (
        f"{path}: certfile cannot be used with [sites] yet: terminate TLS in front of Corral (nginx, HAProxy) "
        "or serve one site per corral serve"
    )
