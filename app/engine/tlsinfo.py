"""TLS facts of a connection: protocol, cipher and the peer certificate, verified or not."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from app.schemas.results import TlsInfo


def tls_info(stream: Any, verified: bool) -> TlsInfo | None:
    """Facts from an httpcore network stream, or None for plain HTTP.

    The certificate is parsed from its DER bytes, which the handshake yields even when
    verification is off (``getpeercert()`` would then return nothing).
    """
    if stream is None:
        return None
    ssl_object: ssl.SSLObject | ssl.SSLSocket | None = stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    der = ssl_object.getpeercert(True)  # httpcore hands out the C object: positional only
    info: dict[str, Any] = {
        "version": ssl_object.version(),
        "cipher": cipher[0] if cipher else None,
        "verified": verified,
    }
    if der:
        info.update(_certificate_facts(x509.load_der_x509_certificate(der)))
    return TlsInfo(**info)


def _certificate_facts(cert: x509.Certificate) -> dict[str, Any]:
    not_after = cert.not_valid_after_utc
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(v) for v in names.get_values_for_type(x509.DNSName)]
        sans += [str(v) for v in names.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        sans = []
    return {
        "subject": _common_name(cert.subject) or cert.subject.rfc4514_string(),
        "issuer": _common_name(cert.issuer) or cert.issuer.rfc4514_string(),
        "sans": sans,
        "not_before": cert.not_valid_before_utc,
        "not_after": not_after,
        "days_left": (not_after - datetime.now(UTC)).days,
    }


def _common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None
