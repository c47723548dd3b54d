"""The control plane's identity service: which token may ask for which identity, and
signing CSRs for it.

    token = cp.identity.grant(workload_id("default", "reviews"))   # the runtime
    issued = cp.identity.sign(token, csr_pem)                      # the API, for the agent
    cp.identity.revoke(token)                                      # instance removed

A token grants exactly one SPIFFE ID. A CSR asking for another is refused
(`NotGranted`), whatever else it holds: a token is a workload's proof of who it is.

A node agent's token (`grant_node`) may ask for any workload identity of the trust
domain, and for server names: the node agent runs every instance of its machine and
makes each identity's key itself, so it proves who it runs as the platform.

A gateway's token may also get server names (`grant(..., serving=True)`): DNS names
and IP addresses for the hosts its Gateway servers answer, added beside the SPIFFE ID
(`sign(token, csr, dns_names=..., ip_addresses=...)`). Any other token asking for
names is refused (`NamesNotGranted`): a workload must not be able to pass for a host.
"""

from __future__ import annotations

import datetime
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


class NamesNotGranted(PermissionError):
    """A token that grants no server names asks for DNS names or IP addresses."""

    def __init__(self, granted: SpiffeId) -> None:
        super().__init__(
            f"this token grants {granted} only: DNS names and IP addresses are for "
            "gateway tokens: refused"
        )
        self.granted = granted


@dataclass(frozen=True)
class _Grant:
    identity: SpiffeId | None  # None: any identity of the trust domain (a node agent)
    serving: bool


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
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self.issued_count = 0

    @property
    def trust_domain(self) -> str:
        return self.ca.trust_domain

    def identity(self, namespace: str, service_account: str) -> SpiffeId:
        """The SPIFFE ID of `service_account` in `namespace`, in this trust domain."""
        return SpiffeId(self.trust_domain, namespace, service_account or "default")

    def grant(self, identity: SpiffeId, token: str | None = None, *, serving: bool = False) -> str:
        """Let `token` (a new random one if None) ask for `identity` and, if `serving`
        (a gateway), for server names too; returns the token."""
        token = token or secrets.token_urlsafe(32)
        with self._lock:
            self._grants[token] = _Grant(identity, serving)
        return token

    def grant_node(self, token: str | None = None) -> str:
        """Let `token` (a node agent's) ask for any identity of the trust domain, and
        for server names; returns the token."""
        token = token or secrets.token_urlsafe(32)
        with self._lock:
            self._grants[token] = _Grant(None, True)
        return token

    def revoke(self, token: str) -> bool:
        """Forget `token`; whether it was granted."""
        with self._lock:
            return self._grants.pop(token, None) is not None

    def _grant_of(self, token: str) -> _Grant | None:
        with self._lock:
            grants = list(self._grants.items())
        found = None
        for known, grant in grants:
            if hmac.compare_digest(known.encode(), token.encode()):
                found = grant
        return found

    def granted(self, token: str) -> SpiffeId | None:
        """The identity `token` grants, if any (compared in constant time)."""
        grant = self._grant_of(token)
        return grant.identity if grant is not None else None

    def sign(
        self,
        token: str,
        csr_pem: str | bytes,
        *,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
    ) -> Issued:
        """Sign `csr_pem` for the identity `token` grants, with the server names asked
        for (a gateway token only).

        Raises UnknownToken, BadCsr (malformed, or not exactly one SPIFFE ID),
        NotGranted (it asks for another identity) or NamesNotGranted."""
        grant = self._grant_of(token)
        if grant is None:
            raise UnknownToken("unknown or revoked token")
        request = csr_mod.read_csr(csr_pem)
        asked = csr_mod.requested_identity(request)
        identity = grant.identity
        if identity is None:  # a node agent's: any identity of this trust domain
            identity = SpiffeId(self.trust_domain, asked.namespace, asked.service_account)
        if asked != identity:
            raise NotGranted(identity, asked)
        if (dns_names or ip_addresses) and not grant.serving:
            raise NamesNotGranted(identity)
        issued = self.ca.sign(
            request,
            identity,
            ttl=self.ttl,
            now=self._clock(),
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )
        self.issued_count += 1
        names = [*dns_names, *ip_addresses]
        also = f" for {', '.join(names)}" if names else ""
        log.info("issued %s%s serial %s until %s", identity, also, issued.serial, issued.not_after)
        return issued
