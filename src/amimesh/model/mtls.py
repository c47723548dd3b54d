"""Which mutual TLS mode a workload's inbound port accepts, from PeerAuthentications. Pure.

Three levels of policy, the narrowest deciding, as in Istio:

- **workload**: a PeerAuthentication in the workload's namespace whose selector matches
  its labels; its `portLevelMtls` entry for the port comes first, then its `mtls`;
- **namespace**: one without a selector (or with empty `matchLabels`) in the
  workload's namespace;
- **mesh**: one without a selector in the root namespace, `istio-system`.

A mode of UNSET (or no `mtls`) defers to the next broader level; with nothing set
anywhere the mode is PERMISSIVE, Istio's default. Where several policies apply at one
level, Istio takes the oldest; Ami takes the first by name, which does not depend on
when a file was loaded.

Identities are SPIFFE IDs: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from amimesh.model import selection
from amimesh.resources.istio_security import PeerAuthentication

Mode = Literal["STRICT", "PERMISSIVE", "DISABLE"]

ROOT_NAMESPACE = selection.ROOT_NAMESPACE
DEFAULT_MODE: Mode = "PERMISSIVE"

# Endpoint label (Istio's) that marks a WorkloadEntry whose workload runs a sidecar.
TLS_MODE_LABEL = "security.istio.io/tlsMode"
TLS_MODE_ISTIO = "istio"
TLS_MODE_DISABLED = "disabled"

# namespace -> that namespace's PeerAuthentications, by name.
PeerAuthIndex = Mapping[str, tuple[PeerAuthentication, ...]]


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def index(policies: Iterable[PeerAuthentication]) -> dict[str, tuple[PeerAuthentication, ...]]:
    """PeerAuthentications by namespace, each namespace's in name order."""
    return selection.by_namespace(policies)


@dataclass(frozen=True)
class Policies:
    """The PeerAuthentications that decide for one workload, narrowest first."""

    workload: PeerAuthentication | None = None
    namespace: PeerAuthentication | None = None
    mesh: PeerAuthentication | None = None

    def mode(self, port: int) -> Mode:
        """The mode of the workload's port `port` (a workload port, not a host port)."""
        w = self.workload
        if w is not None and w.spec.portLevelMtls:
            level = w.spec.portLevelMtls.get(port)
            if level is not None and level.mode != "UNSET":
                return level.mode
        for pa in (w, self.namespace, self.mesh):
            if pa is not None and pa.spec.mtls is not None and pa.spec.mtls.mode != "UNSET":
                return pa.spec.mtls.mode
        return DEFAULT_MODE


def policies(idx: PeerAuthIndex, namespace: str, labels: Mapping[str, str]) -> Policies:
    """The policies that apply to a workload of `namespace` with `labels`."""
    found = selection.levels(idx, namespace, labels)
    return Policies(workload=found.workload, namespace=found.namespace, mesh=found.mesh)


def inbound_mode(idx: PeerAuthIndex, namespace: str, labels: Mapping[str, str], port: int) -> Mode:
    """The mode in force on workload port `port` of a workload of `namespace`."""
    return policies(idx, namespace, labels).mode(port)


def endpoint_tls_mode(
    idx: PeerAuthIndex, namespace: str, labels: Mapping[str, str], port: int, *, sidecar: bool
) -> str:
    """How a client reaches an endpoint: `istio` (mutual TLS) when the endpoint has a
    sidecar that accepts it at `port`, else `disabled` (plain text)."""
    if not sidecar or inbound_mode(idx, namespace, labels, port) == "DISABLE":
        return TLS_MODE_DISABLED
    return TLS_MODE_ISTIO
