"""The CA's files (the I/O edge of `ca`), in Istio's `cacerts` layout:

    ca-cert.pem     the signing certificate
    ca-key.pem      its private key (mode 0600: the only key Ami ever writes)
    root-cert.pem   the roots workloads trust (the signing cert itself when self-signed)
    cert-chain.pem  optional: intermediates between ca-cert.pem and the root

`load_or_create(dir)` keeps a self-signed root there, made on first use, so that a
restarted mesh keeps its root. `load(dir)` reads a user-supplied root or
intermediate (the same layout) and never writes to it.
"""

from __future__ import annotations

import datetime
import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from amimesh.identity import pem
from amimesh.identity.ca import CaError, CertificateAuthority
from amimesh.identity.spiffe import TRUST_DOMAIN

log = logging.getLogger(__name__)

CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
ROOT_CERT = "root-cert.pem"
CERT_CHAIN = "cert-chain.pem"
KEY_MODE = 0o600


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)  # whatever the umask
    tmp.replace(path)


def _read_key(path: Path) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise CaError(f"{path}: not an unencrypted PEM private key: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CaError(f"{path}: want an EC or RSA key")
    return key


def _check_mode(path: Path, *, fix: bool) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        if fix:
            log.warning("%s had mode %o; set to 0600", path, mode)
            os.chmod(path, KEY_MODE)
        else:
            log.warning("%s is readable by others (mode %o): chmod 600 it", path, mode)


def load(directory: Path, trust_domain: str = TRUST_DOMAIN) -> CertificateAuthority:
    """The CA of `directory` (Istio's cacerts layout); raises CaError or OSError."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    for required in (cert_path, key_path):
        if not required.is_file():
            raise CaError(f"{directory}: no {required.name} (want {CA_CERT} and {CA_KEY})")
    try:
        cert = pem.load_certificates(cert_path.read_bytes())[0]
        root_file = directory / ROOT_CERT
        roots = pem.load_certificates(root_file.read_bytes()) if root_file.exists() else []
        chain_file = directory / CERT_CHAIN
        chain = pem.load_certificates(chain_file.read_bytes()) if chain_file.exists() else []
    except pem.BadPem as e:
        raise CaError(f"{directory}: {e}") from None
    _check_mode(key_path, fix=False)
    if not roots and cert.issuer != cert.subject:
        raise CaError(f"{directory}: {CA_CERT} is not self-signed and there is no {ROOT_CERT}")
    return CertificateAuthority(
        _read_key(key_path), cert, roots=roots, chain=chain, trust_domain=trust_domain
    )


def load_or_create(
    directory: Path,
    trust_domain: str = TRUST_DOMAIN,
    *,
    now: datetime.datetime | None = None,
) -> CertificateAuthority:
    """The self-signed root kept in `directory`, made (and written) on first use."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    key_path = directory / CA_KEY
    if key_path.exists():
        _check_mode(key_path, fix=True)
        ca = load(directory, trust_domain)
        log.info("CA: root %s from %s", pem.fingerprint(ca.roots[0]), directory)
        return ca
    now = now or datetime.datetime.now(datetime.UTC)
    ca = CertificateAuthority.self_signed(trust_domain, now=now)
    cert = ca.cert_pem().encode()
    # The key goes last: its presence means the directory is complete.
    _write(directory / CA_CERT, cert, 0o644)
    _write(directory / ROOT_CERT, cert, 0o644)
    _write(key_path, ca.key_pem(), KEY_MODE)
    log.info("CA: new self-signed root %s in %s", pem.fingerprint(ca.cert), directory)
    return ca
