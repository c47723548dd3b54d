"""The control plane's identity service: which token may ask for which identity, and
signing CSRs for it.

    token = cp.identity.grant(workload_id("default", "reviews"))   # the runtime
    issued = cp.identity.sign(token, csr_pem)                      # the API, for the agent
    cp.identity.revoke(token)                                      # instance removed

A token grants exactly one SPIFFE ID. A CSR asking for another is refused
(`NotGranted`), whatever else it holds: a token is a workload's proof of who it is.
"""

from __future__ import annotations

import datetime
import hmac
import logging
import secrets
import threading
from collections.abc import Callable

from amimesh.identity import csr as csr_mod
from amimesh.identity.ca import CertificateAuthority
from amimesh.identity.issued import Issued
from amimesh.identity.spiffe import SpiffeId

log = logging.getLogger(__name__)

DEFAULT_TTL = datetime.timedelta(hours=24)
Clock = Callable[[], datetime.datetime]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class UnknownToken(LookupError):
    """No identity is granted to this token (never granted, or revoked)."""


class NotGranted(PermissionError):
    """The CSR asks for an identity the token does not grant."""

    def __init__(self, granted: SpiffeId, asked: SpiffeId) -> None:
        super().__init__(f"this token grants {granted}, and the CSR asks for {asked}: refused")
        self.granted = granted
        self.asked = asked


class IdentityService:
    """Token grants over one CA. Thread-safe: the runtime grants from its loop, the
    API signs from the control plane's."""

    def __init__(
        self,
        ca: CertificateAuthority,
        *,
        ttl: datetime.timedelta = DEFAULT_TTL,
        clock: Clock = _utcnow,
    ) -> None:
        if ttl <= datetime.timedelta(0):
            raise ValueError(f"certificate TTL must be positive, got {ttl}")
        self.ca = ca
        self.ttl = ttl
        self._clock = clock
        self._grants: dict[str, SpiffeId] = {}
        self._lock = threading.Lock()
        self.issued_count = 0

    @property
    def trust_domain(self) -> str:
        return self.ca.trust_domain

    def identity(self, namespace: str, service_account: str) -> SpiffeId:
        """The SPIFFE ID of `service_account` in `namespace`, in this trust domain."""
        return SpiffeId(self.trust_domain, namespace, service_account or "default")

    def grant(self, identity: SpiffeId, token: str | None = None) -> str:
        """Let `token` (a new random one if None) ask for `identity`; returns it."""
        token = token or secrets.token_urlsafe(32)
        with self._lock:
            self._grants[token] = identity
        return token

    def revoke(self, token: str) -> bool:
        """Forget `token`; whether it was granted."""
        with self._lock:
            return self._grants.pop(token, None) is not None

    def granted(self, token: str) -> SpiffeId | None:
        """The identity `token` grants, if any (compared in constant time)."""
        with self._lock:
            grants = list(self._grants.items())
        found = None
        for known, identity in grants:
            if hmac.compare_digest(known.encode(), token.encode()):
                found = identity
        return found

    def sign(self, token: str, csr_pem: str | bytes) -> Issued:
        """Sign `csr_pem` for the identity `token` grants.

        Raises UnknownToken, BadCsr (malformed, or not exactly one SPIFFE ID), or
        NotGranted (it asks for another identity)."""
        identity = self.granted(token)
        if identity is None:
            raise UnknownToken("unknown or revoked token")
        request = csr_mod.read_csr(csr_pem)
        asked = csr_mod.requested_identity(request)
        if asked != identity:
            raise NotGranted(identity, asked)
        issued = self.ca.sign(request, identity, ttl=self.ttl, now=self._clock())
        self.issued_count += 1
        log.info("issued %s serial %s until %s", identity, issued.serial, issued.not_after)
        return issued
