"""Reading and describing PEM certificates (pure): chains, bundles, fingerprints."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization


class BadPem(ValueError):
    """Text that does not hold the PEM certificates it should."""


def load_certificates(pem: str | bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM text, in order; raises BadPem if there is none."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise BadPem(f"not PEM certificates: {e}") from None
    if not certs:
        raise BadPem("no certificate in the PEM text")
    return certs


def to_pem(certs: Sequence[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, as colon-separated upper-case hex (openssl's)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value.get_values_for_type(x509.UniformResourceIdentifier))


def _utc(when: datetime.datetime) -> datetime.datetime:
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def not_before(cert: x509.Certificate) -> datetime.datetime:
    return _utc(cert.not_valid_before_utc)


def not_after(cert: x509.Certificate) -> datetime.datetime:
    return _utc(cert.not_valid_after_utc)


@dataclass(frozen=True)
class CertSummary:
    """What `ami identity` shows of one certificate."""

    subject: str
    issuer: str
    serial: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    uris: tuple[str, ...]
    fingerprint: str
    is_ca: bool

    def to_json(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "uris": list(self.uris),
            "fingerprint_sha256": self.fingerprint,
            "is_ca": self.is_ca,
        }


def summary(cert: x509.Certificate) -> CertSummary:
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=serial_hex(cert),
        not_before=not_before(cert),
        not_after=not_after(cert),
        uris=tuple(uri_sans(cert)),
        fingerprint=fingerprint(cert),
        is_ca=is_ca,
    )
