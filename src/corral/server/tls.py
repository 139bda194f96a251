"""TLS: certificate material read by the master, an SSLContext built from it, environ keys.

How this works: the master reads the PEM files named by --certfile, --keyfile and
--ca-certs into a `TLSMaterial` (their text, not their paths) at start and again on
every reload, and checks it by building a context once. Each worker gets the
material of its generation in its spec (by fork, or inside the JSON spec an exec'd
worker reads from a pipe) and builds its own context from it before it drops
privileges. So a key file readable only by root works, workers of a new generation
serve the new certificate while the old generation finishes with the old one, and
a certificate that fails to load at a reload never reaches a worker.

OpenSSL loads a certificate chain and a key only from a file, so the PEM text is
handed to it through a memfd (/proc/self/fd/N): nothing sensitive lands on disk.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..config import Config

# Offered in the handshake, in order of preference; HTTP1_ONLY with --no-http2-tls.
ALPN_PROTOCOLS = ("h2", "http/1.1")
HTTP1_ONLY = ("http/1.1",)

_VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_PEM_CERT = "-----BEGIN CERTIFICATE-----"
_OPENSSL_DETAIL = re.compile(r"^\[\w+\] | \(_ssl\.c:\d+\)$")
_PEM_KEY = "PRIVATE KEY-----"  # BEGIN PRIVATE KEY, BEGIN RSA/EC PRIVATE KEY, BEGIN ENCRYPTED PRIVATE KEY


class TLSError(Exception):
    """A certificate, key or CA file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class TLSMaterial:
    """The PEM text of one generation's certificate, key and client CAs (latin-1 decoded)."""

    cert: str
    key: str | None  # None: the key is in the certificate file
    ca: str | None
    client_cert: str  # none | optional | required
    certfile: str  # where the certificate came from, for messages


def read_material(config: Config) -> TLSMaterial:
    """Read and check the files the config names; raise TLSError saying what is wrong."""
    assert config.certfile is not None
    cert = _read(config.certfile, "certfile")
    key = _read(config.keyfile, "keyfile") if config.keyfile else None
    ca = _read(config.ca_certs, "ca-certs") if config.ca_certs else None
    if _PEM_CERT not in cert:
        raise TLSError(f"certfile {config.certfile}: no PEM certificate in it ({_PEM_CERT} ...)")
    if _PEM_KEY not in (key if key is not None else cert):
        where = f"keyfile {config.keyfile}" if key is not None else f"certfile {config.certfile} (and no --keyfile)"
        raise TLSError(f"{where}: no PEM private key in it")
    if ca is not None and _PEM_CERT not in ca:
        raise TLSError(f"ca-certs {config.ca_certs}: no PEM certificate in it")
    material = TLSMaterial(cert, key, ca, config.client_cert, config.certfile)
    build_context(material)  # the one true test: OpenSSL accepts the pair
    return material


def _read(path: str, key: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except OSError as exc:
        raise TLSError(f"cannot read {key} {path}: {exc.strerror or exc}") from None


def build_context(material: TLSMaterial, http2: bool = False) -> ssl.SSLContext:
    """A server context: TLS 1.2 or later, the standard library's modern defaults, ALPN
    (with `http2`, "h2" first: RFC 9113 9.2 asks TLS 1.2 and no renegotiation, both set here)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=material.ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Client-initiated renegotiation (TLS 1.2) lets one client make us repeat handshakes.
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(list(ALPN_PROTOCOLS if http2 else HTTP1_ONLY))
    context.verify_mode = _VERIFY_MODES[material.client_cert]
    try:
        with _pem_path(material.cert) as certfile, _pem_path(material.key or material.cert) as keyfile:
            context.load_cert_chain(certfile, keyfile, password=_no_password)
    except _EncryptedKey:
        raise TLSError(f"the private key for {material.certfile} is encrypted: Corral needs it unencrypted") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TLSError(f"the private key does not belong to the certificate in {material.certfile}") from None
        detail = _OPENSSL_DETAIL.sub("", str(exc.args[-1]))  # "[SSL] PEM lib (_ssl.c:3905)" -> "PEM lib"
        if detail == "PEM lib":
            detail = "a PEM block in them is malformed (OpenSSL: PEM lib)"
        raise TLSError(f"cannot load the certificate {material.certfile} and its key: {detail}") from None
    return context


class _EncryptedKey(Exception):
    pass


def _no_password() -> str:
    # Without a callback OpenSSL would prompt on the terminal, in a daemon.
    raise _EncryptedKey()


@contextmanager
def _pem_path(text: str) -> Iterator[str]:
    """A path OpenSSL can open that holds `text`, without writing it to a disk."""
    data = text.encode("latin-1")
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("corral-tls", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    import tempfile

    with tempfile.NamedTemporaryFile() as f:  # no memfd (not Linux): a private file, removed at once
        f.write(data)
        f.flush()
        yield f.name


# -- the environ of a TLS connection (Apache mod_ssl's names) ----------------------------------


def connection_environ(ssl_object: Any) -> dict[str, str]:
    """HTTPS=on and what the handshake settled; with client certificates, the client's."""
    environ = {"HTTPS": "on"}
    if ssl_object is None:
        return environ
    environ["SSL_PROTOCOL"] = ssl_object.version() or ""
    cipher = ssl_object.cipher()
    if cipher:
        environ["SSL_CIPHER"] = cipher[0]
    if ssl_object.context.verify_mode == ssl.CERT_NONE:
        return environ
    cert = ssl_object.getpeercert()
    if not cert:
        environ["SSL_CLIENT_VERIFY"] = "NONE"  # --client-cert optional, and none was sent
        return environ
    environ["SSL_CLIENT_VERIFY"] = "SUCCESS"  # only a verified certificate completes the handshake
    environ["SSL_CLIENT_S_DN"] = format_dn(cert.get("subject", ()))
    environ["SSL_CLIENT_I_DN"] = format_dn(cert.get("issuer", ()))
    environ["SSL_CLIENT_M_SERIAL"] = str(cert.get("serialNumber", ""))
    environ["SSL_CLIENT_V_START"] = str(cert.get("notBefore", ""))
    environ["SSL_CLIENT_V_END"] = str(cert.get("notAfter", ""))
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        environ["SSL_CLIENT_CERT"] = ssl.DER_cert_to_PEM_cert(der)
    return environ


# OpenSSL's short names for the attributes getpeercert() spells out in full.
_SHORT_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "street",
    "domainComponent": "DC",
    "userId": "UID",
    "givenName": "GN",
    "surname": "SN",
}
_SPECIAL = set(',+"\\<>;')


def format_dn(name: Any) -> str:
    """A distinguished name as RFC 4514 (and mod_ssl) writes it: most specific first, CN=x,O=y,C=z."""
    rdns = []
    for rdn in reversed(tuple(name)):
        rdns.append("+".join(f"{_SHORT_NAMES.get(attr, attr)}={_escape(str(value))}" for attr, value in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    out = "".join("\\" + c if c in _SPECIAL else c for c in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out
