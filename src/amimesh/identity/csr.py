"""Workload keys and certificate signing requests (pure but for the key's randomness).

The agent makes an EC P-256 key and a CSR naming its SPIFFE ID in a URI SAN; the CA
reads the CSR back with `read_csr`, which checks its signature and says, in one
sentence, what is wrong with a bad one.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from amimesh.identity.spiffe import BadSpiffeId, SpiffeId

PrivateKey = ec.EllipticCurvePrivateKey


class BadCsr(ValueError):
    """A CSR the CA cannot sign: not PEM, a bad signature, no or several identities."""


def new_key() -> PrivateKey:
    """A fresh EC P-256 key (it lives in memory only; see `key_pem`)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> str:
    """The key as unencrypted PKCS#8 PEM, for Envoy by SDS. Never write it to disk."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_csr(key: PrivateKey, identity: SpiffeId) -> str:
    """A PEM CSR for `identity` (its only URI SAN; the subject is left empty, as
    SPIFFE asks), signed with `key`."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.uri)]),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def read_csr(pem: str | bytes) -> x509.CertificateSigningRequest:
    """The CSR of a PEM text, its self-signature checked; raises BadCsr."""
    data = pem.encode() if isinstance(pem, str) else pem
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in data:
        raise BadCsr("csr: not a PEM certificate request (no BEGIN CERTIFICATE REQUEST)")
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as e:
        raise BadCsr(f"csr: cannot be parsed: {e}") from None
    try:
        valid = csr.is_signature_valid
        csr.public_key()
    except Exception as e:  # an unsupported key type or algorithm
        raise BadCsr(f"csr: unsupported key or signature: {e}") from None
    if not valid:
        raise BadCsr("csr: its signature does not match its public key")
    return csr


def requested_identity(csr: x509.CertificateSigningRequest) -> SpiffeId:
    """The one SPIFFE ID a CSR asks for (its URI SAN); raises BadCsr."""
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        raise BadCsr("csr: no subjectAltName; want one URI SAN spiffe://...") from None
    except ValueError as e:
        raise BadCsr(f"csr: bad extensions: {e}") from None
    uris = ext.value.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise BadCsr(f"csr: {len(uris)} URI SANs; want exactly one spiffe:// ID")
    try:
        return SpiffeId.parse(uris[0])
    except BadSpiffeId as e:
        raise BadCsr(f"csr: {e}") from None
