"""The CA and its parts: SPIFFE IDs, CSRs, signing, the CA's files, token grants."""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from amimesh.identity import csr as csr_mod
from amimesh.identity import pem, store
from amimesh.identity.ca import CaError, CertificateAuthority
from amimesh.identity.issued import Issued
from amimesh.identity.service import (
    IdentityService,
    NamesNotGranted,
    NotGranted,
    UnknownToken,
)
from amimesh.identity.spiffe import BadSpiffeId, SpiffeId, workload_id

NOW = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)
REVIEWS = SpiffeId("cluster.local", "default", "reviews")
RATINGS = SpiffeId("cluster.local", "default", "ratings")


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.self_signed(now=NOW)


# --- SPIFFE IDs ------------------------------------------------------------------------


def test_spiffe_ids_round_trip() -> None:
    uri = "spiffe://cluster.local/ns/shop/sa/reviews"
    assert str(SpiffeId.parse(uri)) == uri
    assert workload_id("shop", "reviews") == SpiffeId("cluster.local", "shop", "reviews")
    assert workload_id("shop", "").service_account == "default"


@pytest.mark.parametrize(
    "uri",
    [
        "https://cluster.local/ns/a/sa/b",
        "spiffe://cluster.local/ns/a",
        "spiffe://cluster.local/ns/a/sa/b/c",
        "spiffe://cluster.local/sa/a/ns/b",
        "spiffe://Cluster Local/ns/a/sa/b",
        "spiffe://cluster.local/ns/../sa/b",
        "spiffe://cluster.local/ns//sa/b",
    ],
)
def test_bad_spiffe_ids_are_refused(uri: str) -> None:
    with pytest.raises(BadSpiffeId):
        SpiffeId.parse(uri)


# --- CSRs ------------------------------------------------------------------------------


def test_a_csr_names_its_identity_and_nothing_else() -> None:
    key = csr_mod.new_key()
    assert isinstance(key.curve, ec.SECP256R1)
    request = csr_mod.read_csr(csr_mod.make_csr(key, REVIEWS))
    assert csr_mod.requested_identity(request) == REVIEWS
    assert request.subject == x509.Name([])


def _csr_with(sans: list[x509.GeneralName] | None) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    )
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    req = builder.sign(csr_mod.new_key(), hashes.SHA256())
    return req.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello", "not a PEM certificate request"),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "cannot be parsed",
        ),
        (_csr_with(None), "no subjectAltName"),
        (_csr_with([x509.DNSName("reviews")]), "0 URI SANs"),
        (
            _csr_with(
                [
                    x509.UniformResourceIdentifier(REVIEWS.uri),
                    x509.UniformResourceIdentifier(RATINGS.uri),
                ]
            ),
            "2 URI SANs",
        ),
        (_csr_with([x509.UniformResourceIdentifier("https://x/y")]), "not a spiffe:// URI"),
    ],
)
def test_malformed_csrs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(csr_mod.BadCsr, match=message):
        csr_mod.requested_identity(csr_mod.read_csr(text))


def test_a_csr_with_a_forged_signature_is_refused() -> None:
    good = x509.load_pem_x509_csr(csr_mod.make_csr(csr_mod.new_key(), REVIEWS).encode())
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0xFF  # inside the signature
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(csr_mod.BadCsr, match="signature"):
        csr_mod.read_csr(forged)


# --- signing ---------------------------------------------------------------------------


def test_a_workload_certificate(ca: CertificateAuthority) -> None:
    key = csr_mod.new_key()
    issued = ca.sign(csr_mod.make_csr(key, REVIEWS), REVIEWS, ttl=HOUR, now=NOW)
    leaf, *rest = pem.load_certificates(issued.certificate_chain)
    assert rest == []  # signed by the root itself: no intermediates
    assert pem.uri_sans(leaf) == [REVIEWS.uri]
    assert issued.spiffe_id == REVIEWS.uri
    assert pem.not_after(leaf) == NOW + HOUR == issued.not_after
    assert pem.not_before(leaf) == NOW - datetime.timedelta(minutes=1)
    assert issued.serial == pem.serial_hex(leaf)
    assert leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    leaf.verify_directly_issued_by(ca.cert)
    assert pem.load_certificates(issued.trust_bundle) == [ca.cert]


def test_the_identity_comes_from_the_caller_not_the_csr(ca: CertificateAuthority) -> None:
    issued = ca.sign(csr_mod.make_csr(csr_mod.new_key(), RATINGS), REVIEWS, ttl=HOUR, now=NOW)
    assert issued.spiffe_id == REVIEWS.uri


def test_a_short_ttl_is_not_backdated_away(ca: CertificateAuthority) -> None:
    ttl = datetime.timedelta(seconds=3)
    issued, _ = ca.issue(REVIEWS, ttl=ttl, now=NOW)
    assert issued.not_after - issued.not_before == 2 * ttl


def test_no_certificate_outlives_its_ca(ca: CertificateAuthority) -> None:
    issued, _ = ca.issue(REVIEWS, ttl=datetime.timedelta(days=99999), now=NOW)
    assert issued.not_after == pem.not_after(ca.cert)


def test_another_trust_domain_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(CaError, match="outside this CA's trust domain"):
        ca.issue(SpiffeId("other.org", "default", "x"), ttl=HOUR, now=NOW)


def test_issued_round_trips_through_json(ca: CertificateAuthority) -> None:
    issued, _ = ca.issue(REVIEWS, ttl=HOUR, now=NOW)
    assert Issued.from_json(issued.to_json()) == issued


def intermediate(ca: CertificateAuthority) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    inter_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intermediate")])
    inter = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca.cert.subject)
        .public_key(inter_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - HOUR)
        .not_valid_after(NOW + 100 * HOUR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    return inter_key, inter


def test_an_intermediate_ca_puts_itself_in_the_chain(ca: CertificateAuthority) -> None:
    inter_key, inter = intermediate(ca)
    sub = CertificateAuthority(inter_key, inter, roots=[ca.cert], chain=[inter, ca.cert])
    issued, _ = sub.issue(REVIEWS, ttl=HOUR, now=NOW)
    leaf, middle = pem.load_certificates(issued.certificate_chain)
    assert middle == inter
    leaf.verify_directly_issued_by(inter)
    assert pem.load_certificates(issued.trust_bundle) == [ca.cert]


def test_a_ca_key_must_match_its_certificate(ca: CertificateAuthority) -> None:
    with pytest.raises(CaError, match="does not match"):
        CertificateAuthority(ec.generate_private_key(ec.SECP256R1()), ca.cert)


# --- the CA's files --------------------------------------------------------------------


def test_the_root_is_made_once_and_kept(tmp_path: Path) -> None:
    first = store.load_or_create(tmp_path / "ca")
    key_file = tmp_path / "ca" / store.CA_KEY
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    again = store.load_or_create(tmp_path / "ca")  # a restart
    assert again.cert == first.cert
    assert again.trust_bundle == first.trust_bundle
    issued, _ = again.issue(REVIEWS, ttl=HOUR, now=datetime.datetime.now(datetime.UTC))
    pem.load_certificates(issued.certificate_chain)[0].verify_directly_issued_by(first.cert)


def test_a_loose_key_mode_is_tightened(tmp_path: Path) -> None:
    store.load_or_create(tmp_path)
    os.chmod(tmp_path / store.CA_KEY, 0o644)
    store.load_or_create(tmp_path)
    assert stat.S_IMODE((tmp_path / store.CA_KEY).stat().st_mode) == 0o600


def test_a_user_supplied_ca_is_read_not_written(tmp_path: Path, ca: CertificateAuthority) -> None:
    (tmp_path / store.CA_CERT).write_text(ca.cert_pem())
    (tmp_path / store.CA_KEY).write_bytes(ca.key_pem())
    os.chmod(tmp_path / store.CA_KEY, 0o600)
    before = sorted(p.name for p in tmp_path.iterdir())
    loaded = store.load(tmp_path)
    assert loaded.cert == ca.cert and loaded.roots == (ca.cert,)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_user_supplied_intermediate(tmp_path: Path, ca: CertificateAuthority) -> None:
    key, inter = intermediate(ca)
    (tmp_path / store.CA_CERT).write_text(pem.to_pem([inter]))
    (tmp_path / store.CA_KEY).write_bytes(
        CertificateAuthority(key, inter, roots=[ca.cert]).key_pem()
    )
    (tmp_path / store.ROOT_CERT).write_text(ca.cert_pem())
    (tmp_path / store.CERT_CHAIN).write_text(pem.to_pem([inter, ca.cert]))
    loaded = store.load(tmp_path)
    issued, _ = loaded.issue(REVIEWS, ttl=HOUR, now=NOW)
    assert pem.load_certificates(issued.certificate_chain)[1:] == [inter]
    assert pem.load_certificates(issued.trust_bundle) == [ca.cert]


def test_an_intermediate_without_its_root_is_refused(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    key, inter = intermediate(ca)
    (tmp_path / store.CA_CERT).write_text(pem.to_pem([inter]))
    (tmp_path / store.CA_KEY).write_bytes(
        CertificateAuthority(key, inter, roots=[ca.cert]).key_pem()
    )
    with pytest.raises(CaError, match="not self-signed and there is no root-cert.pem"):
        store.load(tmp_path)


def test_a_broken_user_ca_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaError, match="no ca-cert.pem"):
        store.load(tmp_path)
    (tmp_path / store.CA_KEY).write_text("not a key")
    (tmp_path / store.CA_CERT).write_text("not a certificate")
    with pytest.raises(CaError, match="not PEM certificates|no certificate"):
        store.load(tmp_path)


# --- token grants ----------------------------------------------------------------------


def test_a_token_gets_the_identity_it_grants(ca: CertificateAuthority) -> None:
    service = IdentityService(ca, ttl=HOUR, clock=lambda: NOW)
    token = service.grant(REVIEWS)
    issued = service.sign(token, csr_mod.make_csr(csr_mod.new_key(), REVIEWS))
    assert issued.spiffe_id == REVIEWS.uri and issued.not_after == NOW + HOUR


def test_a_csr_for_someone_else_is_refused(ca: CertificateAuthority) -> None:
    service = IdentityService(ca)
    token = service.grant(REVIEWS)
    with pytest.raises(NotGranted) as err:
        service.sign(token, csr_mod.make_csr(csr_mod.new_key(), RATINGS))
    assert str(err.value) == f"this token grants {REVIEWS}, and the CSR asks for {RATINGS}: refused"


def test_only_gateway_tokens_get_server_names(ca: CertificateAuthority) -> None:
    service = IdentityService(ca)
    gateway_id = SpiffeId("cluster.local", "istio-system", "istio-ingressgateway-service-account")
    csr = csr_mod.make_csr(csr_mod.new_key(), gateway_id)
    gateway = service.grant(gateway_id, serving=True)
    issued = service.sign(gateway, csr, dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    leaf = pem.load_certificates(issued.certificate_chain)[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [gateway_id.uri]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert issued.spiffe_id == gateway_id.uri
    # A workload's token gets its SPIFFE ID and nothing else.
    workload = service.grant(REVIEWS)
    reviews_csr = csr_mod.make_csr(csr_mod.new_key(), REVIEWS)
    with pytest.raises(NamesNotGranted) as err:
        service.sign(workload, reviews_csr, dns_names=["shop.example.com"])
    assert str(err.value) == (
        f"this token grants {REVIEWS} only: DNS names and IP addresses are for gateway "
        "tokens: refused"
    )
    with pytest.raises(NamesNotGranted):
        service.sign(workload, reviews_csr, ip_addresses=["127.0.0.1"])
    assert service.sign(workload, reviews_csr).spiffe_id == REVIEWS.uri


def test_unknown_and_revoked_tokens_are_refused(ca: CertificateAuthority) -> None:
    service = IdentityService(ca)
    csr = csr_mod.make_csr(csr_mod.new_key(), REVIEWS)
    with pytest.raises(UnknownToken):
        service.sign("nobody", csr)
    token = service.grant(REVIEWS, "given")
    assert token == "given" and service.granted("given") == REVIEWS
    assert service.revoke(token) and not service.revoke(token)
    with pytest.raises(UnknownToken):
        service.sign(token, csr)


def test_a_malformed_csr_is_a_bad_request(ca: CertificateAuthority) -> None:
    service = IdentityService(ca)
    with pytest.raises(csr_mod.BadCsr, match="not a PEM certificate request"):
        service.sign(service.grant(REVIEWS), "garbage")


def test_a_ttl_must_be_positive(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="positive"):
        IdentityService(ca, ttl=datetime.timedelta(0))
