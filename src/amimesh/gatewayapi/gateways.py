"""A Gateway's listeners on the mesh's ingress gateway: which are served (each as an
Istio Gateway of one server), which conflict on the one proxy every Gateway shares,
which routes each allows, and the Gateway's status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amimesh.gatewayapi import refs
from amimesh.gatewayapi.status import Condition, condition
from amimesh.gatewayapi.world import Route, World, bounded
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
}
_SERVED = ("HTTP", "HTTPS")


@dataclass
class Listener:
    gateway: ga.Gateway
    spec: ga.Listener
    kinds: tuple[str, ...]
    istio_name: str | None = None  # its Istio Gateway, when served
    attached: int = 0
    conditions: list[Condition] = field(default_factory=list)


@dataclass
class Ports:
    """What the served listeners of every Gateway took of the one ingress gateway, in
    (namespace, name) order: a port is plain text or TLS, and an HTTPS port's
    hostnames each pick one listener (its SNI)."""

    tls: dict[int, bool] = field(default_factory=dict)
    names: dict[int, set[str]] = field(default_factory=dict)

    def conflict(self, spec: ga.Listener) -> tuple[str, str] | None:
        https = spec.protocol == "HTTPS"
        if self.tls.setdefault(spec.port, https) != https:
            return (
                "ProtocolConflict",
                f"port {spec.port} is taken by a listener of another protocol",
            )
        if https:
            taken = self.names.setdefault(spec.port, set())
            name = (spec.hostname or "*").lower()
            if name in taken:
                return "HostnameConflict", f"port {spec.port} already serves {name} over TLS"
            taken.add(name)
        return None


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
    if spec.protocol not in _SERVED:
        msg = f"Ami's gateway does not serve {spec.protocol} listeners yet"
        out.conditions = [
            condition("Accepted", False, "UnsupportedProtocol", msg, now),
            condition("Programmed", False, "Invalid", msg, now),
            resolved,
        ]
        return out
    server: dict[str, Any] = {
        "port": {"number": spec.port, "name": spec.name, "protocol": spec.protocol},
        "hosts": [spec.hostname or "*"],
    }
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
    conflict = ports.conflict(spec)
    if conflict is not None:
        out.conditions = [
            condition("Accepted", True, "Accepted", "", now),
            condition("Conflicted", True, *conflict, now),
            condition("Programmed", False, "Invalid", conflict[1], now),
            resolved,
        ]
        return out
    out.istio_name = bounded(f"{gateway.name}-{SUFFIX}-{spec.name}")
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
                "" if programmed else "no listener is served",
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
