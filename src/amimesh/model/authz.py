"""Which RequestAuthentications and AuthorizationPolicies apply to a proxy. Pure.

A policy selects workloads as Istio's do: in its own namespace, those whose labels
match `selector.matchLabels` (no selector, or an empty one: every workload of the
namespace). A policy in the root namespace (`istio-system`) reaches every namespace:
without a selector the whole mesh, with one the matching workloads anywhere.

A policy with `targetRefs` (or the older `targetRef`) attaches to resources instead,
by Istio's rule (`attached`): only a Kubernetes Gateway API gateway's proxy (one
labelled `gateway.networking.k8s.io/gateway-name`) takes it, when a reference names
that Gateway in the policy's own namespace; every other proxy ignores the policy
altogether. Service, ServiceEntry and GatewayClass references are for Istio's
waypoints, which Ami does not run. A Gateway API gateway's proxy also takes the
selector policies that select it (Istio's default).

`InboundPolicies` is what a sidecar's inbound side (or a gateway) then evaluates, in Istio's order:

1. JWT validation (every selected RequestAuthentication's rules are providers; a
   request with no token passes, one with an invalid token gets 401);
2. DENY policies: any match → 403;
3. AUDIT policies: a match is logged, never refused;
4. ALLOW policies: if there is any, a request no ALLOW rule matches gets 403 (so an
   ALLOW policy with no rules, `spec: {}`, refuses everything); if there is none, the
   request is allowed.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from amimesh.model import selection
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_authz as authz
from amimesh.resources.fields import is_ip

ROOT_NAMESPACE = selection.ROOT_NAMESPACE
# What marks a Kubernetes Gateway API gateway's proxy, and that API's group.
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, order=True)
class ExternalJwks:
    """An https:// `jwksUri` host the mesh does not know, fetched directly (over TLS).

    `host` is the URI's host (lower case, an IPv6 address without brackets), `port` its
    port (443 by default). `rule_host` is the hostname a DestinationRule for that host
    is keyed by, read from the RequestAuthentication's namespace.
    """

    host: str
    port: int
    rule_host: str


@dataclass(frozen=True)
class JwtProvider:
    """One `jwtRules` entry of a RequestAuthentication selecting the proxy.

    `name` is unique per proxy (`NAMESPACE/NAME/INDEX`). `jwks_service` is the
    (hostname, port) of the mesh service a `jwksUri` names; `jwks_external` is the
    identity provider outside the mesh an https:// `jwksUri` names otherwise. Neither
    (the keys are inline, or the URI is unresolved): no keys to fetch.
    """

    name: str
    rule: authz.JWTRule
    jwks_service: tuple[str, int] | None = None
    jwks_external: ExternalJwks | None = None


@dataclass(frozen=True)
class InboundPolicies:
    """What applies to one proxy's inbound traffic; policies in (namespace, name) order."""

    providers: tuple[JwtProvider, ...] = ()
    deny: tuple[authz.AuthorizationPolicy, ...] = ()
    audit: tuple[authz.AuthorizationPolicy, ...] = ()
    allow: tuple[authz.AuthorizationPolicy, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.providers or self.deny or self.audit or self.allow)


@dataclass(frozen=True)
class _Index:
    authentications: tuple[authz.RequestAuthentication, ...]
    policies: tuple[authz.AuthorizationPolicy, ...]


_INDEXES: weakref.WeakKeyDictionary[Snapshot, _Index] = weakref.WeakKeyDictionary()


def _index(snap: Snapshot) -> _Index:
    """The snapshot's security policies, found once per snapshot."""
    found = _INDEXES.get(snap)
    if found is None:
        # `snap.resources` iterates in (kind, namespace, name) order.
        values = snap.resources.values()
        found = _Index(
            tuple(r for r in values if isinstance(r, authz.RequestAuthentication)),
            tuple(r for r in values if isinstance(r, authz.AuthorizationPolicy)),
        )
        _INDEXES[snap] = found
    return found


def selects(namespace: str, selector: authz.WorkloadSelector | None, proxy: Proxy) -> bool:
    """Whether a policy of `namespace` with `selector` applies to `proxy` (a sidecar or
    a gateway: both are selected by their namespace and labels)."""
    if namespace != ROOT_NAMESPACE and namespace != proxy.namespace:
        return False
    return selection.selects(selector.matchLabels if selector is not None else {}, proxy.labels)


def attached(policy: authz.RequestAuthentication | authz.AuthorizationPolicy, proxy: Proxy) -> bool:
    """Whether `policy` applies to `proxy`: by its selector, or by its target references."""
    refs = policy.spec.target_refs()
    gateway_name = proxy.labels.get(GATEWAY_NAME_LABEL)
    if not refs:
        return selects(policy.namespace, policy.spec.selector, proxy)
    if gateway_name is None or policy.namespace != proxy.namespace:
        return False
    return any(
        (ref.group, ref.kind) == (GATEWAY_API_GROUP, "Gateway")
        and ref.name == gateway_name
        and ref.namespace in (None, "", proxy.namespace)
        for ref in refs
    )


def inbound_policies(snap: Snapshot, proxy: Proxy) -> InboundPolicies:
    """The policies `proxy`'s inbound listeners enforce."""
    index = _index(snap)
    providers: list[JwtProvider] = []
    for ra in index.authentications:
        if attached(ra, proxy):
            providers.extend(
                _provider(snap, ra, i, rule) for i, rule in enumerate(ra.spec.jwtRules)
            )
    chosen = [p for p in index.policies if attached(p, proxy)]
    return InboundPolicies(
        providers=tuple(providers),
        deny=_with_action(chosen, "DENY"),
        audit=_with_action(chosen, "AUDIT"),
        allow=_with_action(chosen, "ALLOW"),
    )


def _provider(
    snap: Snapshot, ra: authz.RequestAuthentication, index: int, rule: authz.JWTRule
) -> JwtProvider:
    service = external = None
    if rule.jwksUri is not None:
        service = jwks_service(snap, rule.jwksUri, ra.namespace)
        if service is None:
            external = external_jwks(snap, rule.jwksUri, ra.namespace)
    return JwtProvider(
        name=f"{ra.namespace}/{ra.name}/{index}",
        rule=rule,
        jwks_service=service,
        jwks_external=external,
    )


def _with_action(
    policies: Sequence[authz.AuthorizationPolicy], action: str
) -> tuple[authz.AuthorizationPolicy, ...]:
    return tuple(p for p in policies if p.spec.action == action)


def _host_port(uri: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http:// or https:// `uri`; None if it is neither or
    names no host (validation reports those)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[scheme]


def jwks_service(snap: Snapshot, uri: str, namespace: str) -> tuple[str, int] | None:
    """The (hostname, port) of the mesh service (Service or ServiceEntry) an http:// or
    https:// `uri` names, as read from a resource of `namespace`; None if the snapshot
    has no such service port."""
    found = _host_port(uri)
    if found is None:
        return None
    _, host, port = found
    hostname = snap.resolve(host, namespace)
    svc = snap.service(hostname)
    if svc is None or svc.port(port) is None:
        return None
    return hostname, port


def in_mesh_form(snap: Snapshot, host: str) -> bool:
    """Whether `host` is written as only a mesh name can be (`users`, `users.ns.svc`,
    `users.ns.svc.DOMAIN`), so that no resolver outside the mesh knows it."""
    if is_ip(host) or host == "localhost":
        return False
    return "." not in host or host.endswith(".svc") or host.endswith(f".svc.{snap.domain}")


def external_jwks(snap: Snapshot, uri: str, namespace: str) -> ExternalJwks | None:
    """The identity provider an https:// `uri` naming no mesh service port reaches
    directly; None for http:// (keys in plain text come only through the mesh), for a
    mesh service port, and for a host written as a mesh name (`in_mesh_form`)."""
    found = _host_port(uri)
    if found is None or found[0] != "https" or jwks_service(snap, uri, namespace) is not None:
        return None
    _, host, port = found
    if in_mesh_form(snap, host):
        return None
    return ExternalJwks(host=host, port=port, rule_host=snap.resolve(host, namespace))


def unresolved_jwks_uris(snap: Snapshot) -> list[tuple[authz.RequestAuthentication, int, str]]:
    """(RequestAuthentication, rule index, URI) for every `jwksUri` the sidecars cannot
    fetch: an http:// URI naming no service port of the mesh, an https:// one naming a
    mesh name with no such service port. Tokens of that issuer are refused until it
    exists (for analyzers)."""
    out = []
    for ra in _index(snap).authentications:
        for i, rule in enumerate(ra.spec.jwtRules):
            uri = rule.jwksUri
            if (
                uri is not None
                and jwks_service(snap, uri, ra.namespace) is None
                and external_jwks(snap, uri, ra.namespace) is None
            ):
                out.append((ra, i, uri))
    return out
