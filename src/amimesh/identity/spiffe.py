"""SPIFFE IDs of the mesh: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`."""

from __future__ import annotations

import re
from dataclasses import dataclass

TRUST_DOMAIN = "cluster.local"
SCHEME = "spiffe://"
# A trust domain is a DNS-like name; path segments are Kubernetes names (and `_`, `.`).
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


class BadSpiffeId(ValueError):
    """Not a SPIFFE ID of the form spiffe://TD/ns/NS/sa/SA."""


@dataclass(frozen=True, order=True)
class SpiffeId:
    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        if not _TRUST_DOMAIN.match(self.trust_domain):
            raise BadSpiffeId(f"trust domain {self.trust_domain!r}: want [a-z0-9._-]+")
        for what, value in (
            ("namespace", self.namespace),
            ("service account", self.service_account),
        ):
            if not _SEGMENT.match(value) or value in (".", ".."):
                raise BadSpiffeId(f"{what} {value!r}: want [A-Za-z0-9._-]+")

    def __str__(self) -> str:
        return f"{SCHEME}{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def uri(self) -> str:
        return str(self)

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        """The SPIFFE ID written as `uri`; raises BadSpiffeId for anything else."""
        if not uri.startswith(SCHEME):
            raise BadSpiffeId(f"{uri!r} is not a spiffe:// URI")
        trust_domain, _, path = uri[len(SCHEME) :].partition("/")
        parts = path.split("/")
        if len(parts) != 4 or parts[0] != "ns" or parts[2] != "sa":
            raise BadSpiffeId(f"{uri!r}: want spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT")
        return cls(trust_domain, parts[1], parts[3])


def workload_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> SpiffeId:
    """The identity of a workload running as `service_account` in `namespace`."""
    return SpiffeId(trust_domain, namespace, service_account or "default")
