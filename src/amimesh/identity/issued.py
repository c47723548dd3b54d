"""A signed workload certificate as the CA hands it out (and the API carries it)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from amimesh.identity import pem


@dataclass(frozen=True)
class Issued:
    """The leaf and its intermediates (`certificate_chain`), the roots to trust
    (`trust_bundle`), and the leaf's serial, lifetime and SPIFFE ID."""

    certificate_chain: str
    trust_bundle: str
    serial: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    spiffe_id: str

    def to_json(self) -> dict[str, str]:
        """The body of `POST /api/v1/certificates`' answer."""
        return {
            "certificate_chain": self.certificate_chain,
            "trust_bundle": self.trust_bundle,
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "spiffe_id": self.spiffe_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Issued:
        """Read an answer back; the dates and serial come from the leaf itself, so an
        answer cannot claim a lifetime its certificate does not have."""
        chain = str(data["certificate_chain"])
        bundle = str(data["trust_bundle"])
        leaf = pem.load_certificates(chain)[0]
        pem.load_certificates(bundle)
        uris = pem.uri_sans(leaf)
        return cls(
            certificate_chain=chain,
            trust_bundle=bundle,
            serial=pem.serial_hex(leaf),
            not_before=pem.not_before(leaf),
            not_after=pem.not_after(leaf),
            spiffe_id=uris[0] if uris else str(data.get("spiffe_id", "")),
        )
