"""TLS targets on loopback for the tests: certificates from a private trustme CA (valid,
expired, for another host), from a CA nobody trusts, or truly self-signed, each served by the
shared target app over HTTPS. Nothing leaves this machine."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.servers import ThreadedUvicorn, target_app


def ca_bundle(ca: trustme.CA, directory: Path) -> Path:
    """The CA's certificate as a PEM file, for `ca_bundle=` (the engine and the settings)."""
    path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def ca_name(ca: trustme.CA) -> str:
    """How the engine reports this CA as an issuer: trustme's CA has no CN, so the RFC 4514
    form of its subject."""
    cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else cert.subject.rfc4514_string()


def leaf_pem(
    ca: trustme.CA,
    path: Path,
    *identities: str,
    common_name: str | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Path:
    """A certificate from `ca` for `identities`, written with its key and chain to `path`."""
    cert = ca.issue_cert(
        *identities, common_name=common_name, not_before=not_before, not_after=not_after
    )
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


def self_signed_pem(path: Path, *names: str, common_name: str = "self-signed.test") -> Path:
    """A certificate that is its own issuer (no CA at all), with its key, written to `path`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    alt_names = [_general_name(name) for name in names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(key_pem + cert.public_bytes(serialization.Encoding.PEM))
    return path


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


@contextmanager
def tls_server(pem: Path, app: object | None = None) -> Iterator[ThreadedUvicorn]:
    """`app` (default: the shared target) over HTTPS with the key and chain in `pem`."""
    server = ThreadedUvicorn(
        app if app is not None else target_app(), ssl_keyfile=str(pem), ssl_certfile=str(pem)
    ).start()
    try:
        yield server
    finally:
        server.stop()


def https_url(server: ThreadedUvicorn, path: str = "/status/200", host: str = "127.0.0.1") -> str:
    return f"https://{host}:{server.port}{path}"
