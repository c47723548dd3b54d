"""What a conversion reads, indexed (`World`): Services, ReferenceGrants, the classes
Ami implements, Gateways and routes; and how a route's backends resolve against them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from amimesh.gatewayapi import http, refs
from amimesh.resources import gateway_api as ga
from amimesh.resources import kube
from amimesh.resources.meta import Resource

Key = tuple[str, str, str]
CONTROLLER = "ami.dev/gateway-controller"
# Istio's controller of ambient waypoints (class `istio-waypoint`): Ami reads their
# Gateways and gives them a status saying why they are not run (`gateways`).
WAYPOINT_CONTROLLER = "istio.io/mesh-controller"
CONTROLLERS = (CONTROLLER, "istio.io/gateway-controller", WAYPOINT_CONTROLLER)
BUILTIN_CLASSES = {
    "ami": CONTROLLER,
    "istio": "istio.io/gateway-controller",
    "istio-waypoint": WAYPOINT_CONTROLLER,
}
DOMAIN = "cluster.local"
NAME_LABEL = "kubernetes.io/metadata.name"

Route = ga.HTTPRoute | ga.GRPCRoute | ga.TCPRoute | ga.TLSRoute


def bounded(name: str) -> str:
    """`name`, or when longer than a resource name may be, its start and a digest."""
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[:236].rstrip('.-')}-{digest}"


def service_host(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.{DOMAIN}"


class World:
    """The resources a conversion reads, indexed."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.services: dict[tuple[str, str], kube.Service] = {}
        self.grants: list[ga.ReferenceGrant] = []
        self.classes: dict[str, str] = dict(BUILTIN_CLASSES)
        self.gateways: dict[tuple[str, str], ga.Gateway] = {}
        self.routes: list[Route] = []
        for r in resources:
            if isinstance(r, kube.Service):
                self.services[(r.namespace, r.name)] = r
            elif isinstance(r, ga.ReferenceGrant):
                self.grants.append(r)
            elif isinstance(r, ga.GatewayClass):
                self.classes[r.name] = r.spec.controllerName
            elif isinstance(r, ga.Gateway):
                self.gateways[(r.namespace, r.name)] = r
            elif isinstance(r, ga.HTTPRoute | ga.GRPCRoute | ga.TCPRoute | ga.TLSRoute):
                self.routes.append(r)
        self.routes.sort(key=lambda r: r.key)

    def controller(self, gateway: ga.Gateway) -> str | None:
        found = self.classes.get(gateway.spec.gatewayClassName)
        return found if found in CONTROLLERS else None

    def labels(self, namespace: str) -> dict[str, str]:
        """A namespace's labels: on one machine there is no Namespace object, only the
        label Kubernetes sets on every namespace."""
        return {NAME_LABEL: namespace}

    def resolver(self, route: Route) -> http.Resolve:
        def resolve(
            ref: ga.BackendObjectReference,
        ) -> tuple[http.Destination | None, http.Problem | None]:
            target = refs.backend(ref, route.namespace)
            if (target.group, target.kind) != (refs.CORE, "Service"):
                return None, ("InvalidKind", f"backend kind {target.kind} is not supported")
            if not refs.permitted(self.grants, ga.GROUP, route.KIND, route.namespace, target):
                return None, (
                    "RefNotPermitted",
                    f"backend {target.namespace}/{target.name} is in another namespace "
                    "and no ReferenceGrant there permits it",
                )
            if (target.namespace, target.name) not in self.services:
                return None, (
                    "BackendNotFound",
                    f"service {target.namespace}/{target.name} not found",
                )
            dest: dict[str, Any] = {"host": service_host(target.name, target.namespace)}
            if ref.port is not None:
                dest["port"] = {"number": ref.port}
            return dest, None

        return resolve
