"""A test CA (trustme) and the certificate files a TLS Corral is started with."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme


class PKI:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, written as files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = trustme.CA(organization_name="Corral Test CA")
        self.server = self.ca.issue_cert("localhost", "127.0.0.1")
        self.client = self.ca.issue_cert(
            "alice@example.org", common_name="alice", organization_name="People", organization_unit_name="QA"
        )
        self.cert = self.write("cert.pem", self.server.cert_chain_pems[0].bytes())
        self.key = self.write("key.pem", self.server.private_key_pem.bytes())
        self.ca_file = self.write("ca.pem", self.ca.cert_pem.bytes())

    def write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        return path

    def context(self, client_cert: trustme.LeafCert | None = None, **versions: ssl.TLSVersion) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if client_cert is not None:
            client_cert.configure_cert(context)
        for name, version in versions.items():
            setattr(context, name, version)
        return context
