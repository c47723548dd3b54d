"""The certificate authority: a signing key and certificate, the chain above it and
the roots every workload trusts. Pure: the time is a parameter, keys come in.

    ca = CertificateAuthority.self_signed("cluster.local", now=now)
    issued = ca.sign(csr, identity, ttl=timedelta(hours=24), now=now)

A workload certificate's SPIFFE ID comes from the caller (what the token grants),
never from the CSR: only the CSR's public key is used.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from amimesh.identity import csr as csr_mod
from amimesh.identity import pem
from amimesh.identity.issued import Issued
from amimesh.identity.spiffe import TRUST_DOMAIN, SpiffeId

CaKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
ROOT_TTL = datetime.timedelta(days=3650)
# Workload certificates start a little in the past, for clocks slightly behind ours;
# never more than their own lifetime, so a short TTL is not eaten by it.
BACKDATE = datetime.timedelta(minutes=1)


class CaError(ValueError):
    """A CA that cannot sign: a key that does not match, a certificate that is no CA."""


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _public_bytes(key: object) -> bytes:
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class CertificateAuthority:
    """Signs workload certificates with `key` as `cert`.

    `chain` is what sits between `cert` and a root (intermediates; may be empty),
    `roots` the trust bundle. A self-signed root is its own `cert` and only root.
    """

    def __init__(
        self,
        key: CaKey,
        cert: x509.Certificate,
        *,
        roots: Sequence[x509.Certificate] = (),
        chain: Sequence[x509.Certificate] = (),
        trust_domain: str = TRUST_DOMAIN,
    ) -> None:
        if _public_bytes(key.public_key()) != _public_bytes(cert.public_key()):
            raise CaError("the CA key does not match the CA certificate")
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise CaError(f"{cert.subject.rfc4514_string()} is not a CA certificate")
        self.key = key
        self.cert = cert
        self.roots = tuple(roots) or (cert,)
        self.chain = tuple(c for c in chain if c not in self.roots and c != cert)
        self.trust_domain = trust_domain

    @classmethod
    def self_signed(
        cls,
        trust_domain: str = TRUST_DOMAIN,
        *,
        now: datetime.datetime,
        ttl: datetime.timedelta = ROOT_TTL,
        key: CaKey | None = None,
    ) -> CertificateAuthority:
        """A new root CA for `trust_domain` (a fresh EC P-256 key unless given)."""
        key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
                x509.NameAttribute(NameOID.COMMON_NAME, "Ami root CA"),
            ]
        )
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + ttl)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert, trust_domain=trust_domain)

    # --- what workloads get ------------------------------------------------------------

    @property
    def trust_bundle(self) -> str:
        """The roots, PEM."""
        return pem.to_pem(self.roots)

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        """What follows a leaf in its chain: the signing cert unless it is a root."""
        own = () if self.cert in self.roots else (self.cert,)
        return own + self.chain

    def sign(
        self,
        request: x509.CertificateSigningRequest | str | bytes,
        identity: SpiffeId,
        *,
        ttl: datetime.timedelta,
        now: datetime.datetime,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
    ) -> Issued:
        """A certificate for `identity` over the CSR's public key, valid `ttl` from
        `now` (never past the CA's own expiry). `dns_names` and `ip_addresses` are
        added as SANs after the SPIFFE ID (a gateway's serving certificate: the caller
        decides who may have them). Raises BadCsr, or CaError for an identity outside
        the trust domain."""
        if identity.trust_domain != self.trust_domain:
            raise CaError(f"{identity} is outside this CA's trust domain {self.trust_domain!r}")
        if not isinstance(request, x509.CertificateSigningRequest):
            request = csr_mod.read_csr(request)
        public = request.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise csr_mod.BadCsr("csr: want an EC or RSA public key")
        start = now - min(BACKDATE, ttl)
        end = min(now + ttl, pem.not_after(self.cert))
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            # With an empty subject, the SAN must be critical (RFC 5280 4.2.1.6).
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.UniformResourceIdentifier(identity.uri),
                        *(x509.DNSName(n) for n in dns_names),
                        *(x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses),
                    ]
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issued(
            certificate_chain=pem.to_pem((leaf, *self.intermediates)),
            trust_bundle=self.trust_bundle,
            serial=pem.serial_hex(leaf),
            not_before=pem.not_before(leaf),
            not_after=pem.not_after(leaf),
            spiffe_id=identity.uri,
        )

    def issue(
        self, identity: SpiffeId, *, ttl: datetime.timedelta, now: datetime.datetime
    ) -> tuple[Issued, csr_mod.PrivateKey]:
        """A fresh key and its certificate, in one step (tests, the harness)."""
        key = csr_mod.new_key()
        return self.sign(csr_mod.make_csr(key, identity), identity, ttl=ttl, now=now), key

    # --- persisting --------------------------------------------------------------------

    def cert_pem(self) -> str:
        return pem.to_pem([self.cert])

    def key_pem(self) -> bytes:
        """The CA's private key, PKCS#8 PEM: only `store` writes it, at mode 0600."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
