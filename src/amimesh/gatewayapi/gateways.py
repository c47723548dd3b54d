"""A Gateway's listeners on the mesh's ingress gateway: which are served (each as an
Istio Gateway of one server: HTTP, HTTPS terminated, TCP, or TLS passed through),
which conflict on the one proxy every Gateway shares, which routes each allows, and
the Gateway's status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amimesh.gatewayapi import refs
from amimesh.gatewayapi.status import Condition, condition
from amimesh.gatewayapi.world import WAYPOINT_CONTROLLER, Route, World, bounded
from amimesh.resources import gateway_api as ga

GATEWAY_SELECTOR = {"istio": "ingressgateway"}
ISTIO = "networking.istio.io/v1"
SUFFIX = "gwapi"
_KINDS: dict[str, tuple[str, ...]] = {
    "HTTP": ("HTTPRoute", "GRPCRoute"),
    "HTTPS": ("HTTPRoute", "GRPCRoute"),
    "TLS": ("TLSRoute",),
    "TCP": ("TCPRoute",),
    "UDP": ("UDPRoute",),
    "HBONE": (),
}
# What the ingress gateway serves a listener as (the kinds of its Istio servers, which
# cannot share a port with another kind): plain HTTP, terminated HTTPS, TCP proxied by
# tcp routes, TLS passed through by SNI to tls routes.
HTTP, HTTPS, TCP, PASSTHROUGH = "http", "https", "tcp", "passthrough"


@dataclass
class Listener:
    gateway: ga.Gateway
    spec: ga.Listener
    kinds: tuple[str, ...]
    istio_name: str | None = None  # its Istio Gateway, when served
    kind: str = ""  # HTTP, HTTPS, TCP or PASSTHROUGH, when served
    attached: int = 0
    conditions: list[Condition] = field(default_factory=list)


@dataclass
class Ports:
    """What the served listeners of every Gateway took of the one ingress gateway, in
    (namespace, name) order: a port is plain text or TLS, and an HTTPS port's
    hostnames each pick one listener (its SNI)."""

    kinds: dict[int, str] = field(default_factory=dict)
    names: dict[int, set[str]] = field(default_factory=dict)

    def conflict(self, spec: ga.Listener, kind: str) -> tuple[str, str] | None:
        if self.kinds.setdefault(spec.port, kind) != kind:
            return (
                "ProtocolConflict",
                f"port {spec.port} is taken by a listener of another protocol",
            )
        if kind == TCP and spec.port in self.names:
            # A TCP connection says nothing to choose a listener by.
            return "HostnameConflict", f"port {spec.port} is already a TCP listener's"
        if kind != HTTP:
            taken = self.names.setdefault(spec.port, set())
            name = (spec.hostname or "*").lower()
            if name in taken:
                return "HostnameConflict", f"port {spec.port} already serves {name} over TLS"
            taken.add(name)
        return None


def _kind(spec: ga.Listener) -> str | None:
    """How the ingress gateway serves a listener, or None when it cannot."""
    if spec.protocol == "HTTP":
        return HTTP
    if spec.protocol == "HTTPS":
        return HTTPS
    if spec.protocol == "TCP":
        return TCP
    if spec.protocol == "TLS" and spec.tls is not None and spec.tls.mode == "Passthrough":
        return PASSTHROUGH
    return None


def _not_served(world: World, gateway: ga.Gateway, spec: ga.Listener) -> tuple[bool, str, str]:
    """(accepted, reason, why) of a listener the gateway does not serve."""
    if world.controller(gateway) == WAYPOINT_CONTROLLER:
        return (
            True,
            "Accepted",
            "a waypoint (Istio's ambient mode proxy) is not run: Ami's mesh runs a sidecar "
            "beside each workload on one machine, which applies the routes and policies a "
            "waypoint would",
        )
    if spec.protocol == "HBONE":
        return (
            True,
            "Accepted",
            "HBONE is the tunnel of Istio's ambient mode, between its node proxies and "
            "waypoints; Ami's sidecars on one machine speak plain TCP and mTLS, so no "
            "HBONE port is opened",
        )
    if spec.protocol == "TLS":
        return (
            False,
            "UnsupportedValue",
            "a TLS listener terminating TLS (tls.mode Terminate) in front of TCPRoutes is "
            "not served yet: the gateway terminates TLS only for HTTP (an HTTPS listener) "
            "and passes TLS through (tls.mode Passthrough)",
        )
    return False, "UnsupportedProtocol", f"Ami's gateway does not serve {spec.protocol} listeners"


def listener(
    world: World,
    gateway: ga.Gateway,
    spec: ga.Listener,
    derived: list[dict[str, Any]],
    ports: Ports,
    now: str,
) -> Listener:
    kinds = _KINDS[spec.protocol]
    wanted = spec.allowedRoutes.kinds if spec.allowedRoutes else []
    out = Listener(gateway, spec, kinds)
    resolved = condition("ResolvedRefs", True, "ResolvedRefs", "", now)
    if wanted:
        out.kinds = tuple(
            k.kind for k in wanted if k.kind in kinds and (k.group or ga.GROUP) == ga.GROUP
        )
        if len(out.kinds) != len(wanted):
            resolved = condition(
                "ResolvedRefs",
                False,
                "InvalidRouteKinds",
                f"a {spec.protocol} listener takes only {', '.join(kinds)}",
                now,
            )
    kind = _kind(spec)
    if kind is None or world.controller(gateway) == WAYPOINT_CONTROLLER:
        accepted, reason, msg = _not_served(world, gateway, spec)
        out.conditions = [
            condition("Accepted", accepted, reason, "" if accepted else msg, now),
            condition("Programmed", False, "Invalid", msg, now),
            resolved,
        ]
        return out
    server: dict[str, Any] = {
        "port": {"number": spec.port, "name": spec.name, "protocol": spec.protocol},
        "hosts": ["*" if kind == TCP else spec.hostname or "*"],
    }
    if kind == PASSTHROUGH:
        server["tls"] = {"mode": "PASSTHROUGH"}
    if spec.protocol == "HTTPS" and spec.tls is not None and spec.tls.certificateRefs:
        cert = refs.secret(spec.tls.certificateRefs[0], gateway.namespace)
        problem = None
        if (cert.group, cert.kind) != (refs.CORE, "Secret"):
            problem = ("InvalidCertificateRef", f"certificate kind {cert.kind} is not a Secret")
        elif not refs.permitted(world.grants, ga.GROUP, "Gateway", gateway.namespace, cert):
            problem = (
                "RefNotPermitted",
                f"secret {cert.namespace}/{cert.name} is in another namespace and no "
                "ReferenceGrant there permits it",
            )
        if problem is not None:
            out.conditions = [
                condition("Accepted", True, "Accepted", "", now),
                condition("Programmed", False, "Invalid", problem[1], now),
                condition("ResolvedRefs", False, *problem, now),
            ]
            return out
        server["tls"] = {"mode": "SIMPLE", "credentialName": cert.name}
    conflict = ports.conflict(spec, kind)
    if conflict is not None:
        out.conditions = [
            condition("Accepted", True, "Accepted", "", now),
            condition("Conflicted", True, *conflict, now),
            condition("Programmed", False, "Invalid", conflict[1], now),
            resolved,
        ]
        return out
    out.istio_name = bounded(f"{gateway.name}-{SUFFIX}-{spec.name}")
    out.kind = kind
    derived.append(
        {
            "apiVersion": ISTIO,
            "kind": "Gateway",
            "metadata": {"name": out.istio_name, "namespace": gateway.namespace},
            "spec": {"selector": dict(GATEWAY_SELECTOR), "servers": [server]},
        }
    )
    out.conditions = [
        condition("Accepted", True, "Accepted", "", now),
        condition("Conflicted", False, "NoConflicts", "", now),
        condition("Programmed", True, "Programmed", "", now),
        resolved,
    ]
    return out


def status(gateway: ga.Gateway, listeners: list[Listener], now: str) -> dict[str, Any]:
    programmed = any(x.istio_name is not None for x in listeners)
    return {
        "conditions": [
            condition("Accepted", True, "Accepted", "", now),
            condition(
                "Programmed",
                programmed,
                "Programmed" if programmed else "Invalid",
                "" if programmed else _why_not(listeners),
                now,
            ),
        ],
        "listeners": [
            {
                "name": x.spec.name,
                "supportedKinds": [{"group": ga.GROUP, "kind": k} for k in x.kinds],
                "attachedRoutes": x.attached,
                "conditions": x.conditions,
            }
            for x in listeners
        ],
    }


def _why_not(listeners: list[Listener]) -> str:
    for x in listeners:
        for c in x.conditions:
            if c["type"] == "Programmed" and c["message"]:
                return f"no listener is served; {x.spec.name}: {c['message']}"
    return "no listener is served"


def allows(world: World, listener: Listener, route: Route) -> bool:
    if route.KIND not in listener.kinds:
        return False
    allowed = listener.spec.allowedRoutes
    namespaces = allowed.namespaces if allowed is not None else None
    where = namespaces.from_ if namespaces is not None else "Same"
    if where == "All":
        return True
    if where == "Same":
        return route.namespace == listener.gateway.namespace
    selector = namespaces.selector if namespaces is not None else None
    labels = world.labels(route.namespace)
    return selector is not None and all(labels.get(k) == v for k, v in selector.matchLabels.items())
