"""server/tls.py without a network: files to material, material to context, a handshake in memory."""
# ruff: noqa: E501  (expected messages are kept whole, as the user sees them)

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from corral.config import Config
from corral.process.spawn import decode_spec, encode_spec
from corral.server import tls
from corral.server.spec import WorkerSpec


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Corral Test CA")


@pytest.fixture
def files(tmp_path: Path, ca: trustme.CA) -> dict[str, Path]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    paths = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "both", "ca")}
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    cert.private_key_and_cert_chain_pem.write_to_path(paths["both"])
    ca.cert_pem.write_to_path(paths["ca"])
    return paths


def config(**settings: object) -> Config:
    return Config(**settings)  # type: ignore[arg-type]


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """Run a TLS handshake between two in-memory endpoints; raises the side's SSLError."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for side, obj, outgoing, peer_in in (("c", c, c_out, s_in), ("s", s, s_out, c_in)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(outgoing.read())
        if all(done.values()):
            # TLS 1.3: the server verifies the client's certificate after its own handshake returns.
            s.write(b"x")
            c_in.write(s_out.read())
            c.write(b"y")
            s_in.write(c_out.read())
            s.read()
            return c, s
    raise AssertionError("handshake did not finish")


def client_context(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(["h2", "http/1.1"])
    if cert is not None:
        cert.configure_cert(context)
    return context


def test_material_from_separate_files_and_from_one(files: dict[str, Path], ca: trustme.CA) -> None:
    for settings in ({"certfile": str(files["cert"]), "keyfile": str(files["key"])}, {"certfile": str(files["both"])}):
        material = tls.read_material(config(**settings))
        context = tls.build_context(material)
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert context.verify_mode == ssl.CERT_NONE
        assert context.options & ssl.OP_NO_RENEGOTIATION
        client, server = handshake(context, client_context(ca))
        assert client.selected_alpn_protocol() == "http/1.1"
        environ = tls.connection_environ(server)
        assert environ["HTTPS"] == "on"
        assert environ["SSL_PROTOCOL"] == "TLSv1.3"
        assert "SSL_CLIENT_VERIFY" not in environ


def test_client_certificate_in_environ(files: dict[str, Path], ca: trustme.CA) -> None:
    material = tls.read_material(
        config(certfile=str(files["both"]), ca_certs=str(files["ca"]), client_cert="optional")
    )
    context = tls.build_context(material)
    _, server = handshake(context, client_context(ca))
    assert tls.connection_environ(server)["SSL_CLIENT_VERIFY"] == "NONE"
    person = ca.issue_cert("alice@example.org", common_name="Alice, Jr.", organization_name="People", organization_unit_name="QA")
    _, server = handshake(context, client_context(ca, person))
    environ = tls.connection_environ(server)
    assert environ["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert environ["SSL_CLIENT_S_DN"] == "CN=Alice\\, Jr.,OU=QA,O=People"
    assert environ["SSL_CLIENT_I_DN"].endswith(",O=Corral Test CA")
    peer = server.getpeercert()
    assert environ["SSL_CLIENT_M_SERIAL"] == peer["serialNumber"]
    assert environ["SSL_CLIENT_V_END"] == peer["notAfter"]
    assert environ["SSL_CLIENT_CERT"] == person.cert_chain_pems[0].bytes().decode()


def test_required_client_certificate_refuses_a_client_without_one(files: dict[str, Path], ca: trustme.CA) -> None:
    material = tls.read_material(
        config(certfile=str(files["both"]), ca_certs=str(files["ca"]), client_cert="required")
    )
    with pytest.raises(ssl.SSLError):
        handshake(tls.build_context(material), client_context(ca))
    stranger = trustme.CA().issue_cert("mallory@example.org")
    with pytest.raises(ssl.SSLError):
        handshake(tls.build_context(material), client_context(ca, stranger))


def test_bad_files_are_one_line_errors(files: dict[str, Path], tmp_path: Path, ca: trustme.CA) -> None:
    def problem(**settings: object) -> str:
        with pytest.raises(tls.TLSError) as info:
            tls.read_material(config(**settings))
        assert "\n" not in str(info.value)
        return str(info.value)

    missing = tmp_path / "missing.pem"
    assert problem(certfile=str(missing)) == f"cannot read certfile {missing}: No such file or directory"
    assert problem(certfile=str(files["key"])) == f"certfile {files['key']}: no PEM certificate in it (-----BEGIN CERTIFICATE----- ...)"
    assert problem(certfile=str(files["cert"])) == f"certfile {files['cert']} (and no --keyfile): no PEM private key in it"
    assert problem(certfile=str(files["cert"]), keyfile=str(files["cert"])) == f"keyfile {files['cert']}: no PEM private key in it"
    other = tmp_path / "other.key"
    ca.issue_cert("other").private_key_pem.write_to_path(other)
    assert problem(certfile=str(files["cert"]), keyfile=str(other)) == (
        f"the private key does not belong to the certificate in {files['cert']}"
    )
    key = serialization.load_pem_private_key(files["key"].read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    assert problem(certfile=str(files["cert"]), keyfile=str(encrypted)) == (
        f"the private key for {files['cert']} is encrypted: Corral needs it unencrypted"
    )
    assert problem(certfile=str(files["both"]), ca_certs=str(files["key"]), client_cert="optional") == (
        f"ca-certs {files['key']}: no PEM certificate in it"
    )


def test_material_travels_in_an_exec_workers_spec(files: dict[str, Path]) -> None:
    material = tls.read_material(config(certfile=str(files["cert"]), keyfile=str(files["key"])))
    channel, other = socket.socketpair()
    with channel, other:
        spec = WorkerSpec(Config(), [], channel, 0, tls=material)
        decoded = decode_spec(encode_spec(spec))
        assert decoded.tls == material
        decoded.channel.detach()  # the same fd as `channel`
    plain = WorkerSpec(Config(), [], channel, 0)
    assert encode_spec(plain)["tls"] is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (((("countryName", "US"),), (("organizationName", "Example"),), (("commonName", "www"),)), "CN=www,O=Example,C=US"),
        (((("commonName", "a+b;c<d>e\"f\\g"),),), 'CN=a\\+b\\;c\\<d\\>e\\"f\\\\g'),
        (((("commonName", " #lead"),),), "CN=\\ #lead"),
        (((("commonName", "trail "),),), "CN=trail\\ "),
        (((("organizationalUnitName", "x"), ("commonName", "y")),), "OU=x+CN=y"),
        (((("1.2.3.4", "v"),),), "1.2.3.4=v"),
    ],
)
def test_format_dn(name: tuple[object, ...], expected: str) -> None:
    assert tls.format_dn(name) == expected
