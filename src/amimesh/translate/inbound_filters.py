"""The HTTP filters that enforce security policies where traffic enters the mesh.

Request authentication (JWT, `RequestAuthentication`) and authorization
(`AuthorizationPolicy`) apply where a request enters a proxy that a policy selects: a
sidecar's inbound listeners and a gateway's server listeners. Both ask this module
for their filters (`policy_filters`, the same for both); a proxy no policy selects gets
none. In order: `jwt_authn` (if any RequestAuthentication selects the proxy), then RBAC
for DENY, AUDIT and ALLOW policies (`authz_rbac`). A sidecar's TCP port gets network
RBAC filters instead (`network_filters`, `authz_tcp`). Which policies select a proxy
is `model.authz`.
"""

from __future__ import annotations

from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from amimesh.model import authz
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.translate import authn_jwt, authz_rbac, authz_rules, authz_tcp


def policy_filters(
    policies: authz.InboundPolicies, port: authz_rules.Port
) -> list[hcm_pb2.HttpFilter]:
    """The filters enforcing `policies` on `port`, in order, to run before the router:
    `jwt_authn`, then RBAC (DENY, AUDIT, ALLOW); none for no policy."""
    if policies.empty:
        return []
    out = []
    if policies.providers:
        out.append(authn_jwt.jwt_filter(policies.providers))
    out.extend(authz_rbac.rbac_filters(policies, port))
    return out


def http_filters(snap: Snapshot, proxy: Proxy, port: InboundPort) -> list[hcm_pb2.HttpFilter]:
    """Filters for `port` of `proxy`, in order, to run before the router."""
    return policy_filters(authz.inbound_policies(snap, proxy), port)


def network_filters(
    snap: Snapshot, proxy: Proxy, port: InboundPort
) -> list[listener_components_pb2.Filter]:
    """Network filters for TCP port `port` of `proxy`, to run before the TCP proxy:
    AuthorizationPolicies as network RBAC (`authz_tcp`; RequestAuthentication does not
    apply to TCP)."""
    policies = authz.inbound_policies(snap, proxy)
    return authz_tcp.network_filters(policies, port)
