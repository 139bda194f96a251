"""Which TLS settings go together (checked when the plan is resolved; no file is read here).

The certificate files themselves are read and checked by the master at start
and on every reload (server/tls.py), since they change while the server runs.
"""

from __future__ import annotations

from .settings import Config


def tls_problems(config: Config, multi_site: bool = False) -> list[str]:
    """One line per setting that is set but cannot take effect."""
    problems = []
    if config.certfile is None:
        if config.keyfile is not None:
            problems.append("keyfile is set but certfile is not: HTTPS needs the certificate (--certfile)")
        if config.ca_certs is not None:
            problems.append("ca-certs is set but certfile is not: client certificates need HTTPS (--certfile)")
        if config.client_cert != "none":
            problems.append(f"client-cert = {config.client_cert} needs HTTPS: set certfile (--certfile)")
        return problems
    if config.client_cert != "none" and config.ca_certs is None:
        problems.append(
            f"client-cert = {config.client_cert} needs ca-certs: the CA certificates that sign client certificates"
        )
    if config.client_cert == "none" and config.ca_certs is not None:
        problems.append("ca-certs is only used to verify client certificates: set client-cert to optional or required")
    if multi_site:
        # A routed connection is passed to another site's worker as a bare socket, and TLS
        # state cannot travel with it (docs/tls.md, "Limits").
        problems.append(
            "certfile cannot be used with [sites] yet: terminate TLS in front of Corral (nginx, HAProxy) "
            "or serve one site per corral serve"
        )
    return problems
