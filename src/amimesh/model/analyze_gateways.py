"""`ami analyze` checks of Gateways: fields Istio accepts and then ignores (a SIMPLE
server's `caCertificates`; a server's `defaultEndpoint`, which Istio's API marks as not
implemented), and an AUTO_PASSTHROUGH server, which means nothing on one network.
Gateway API Gateways of Istio's ambient mode: HBONE listeners and waypoints (class
`istio-waypoint`), accepted and not run on one machine."""

from __future__ import annotations

from collections.abc import Iterator

from amimesh.model.analyze_findings import (
    GATEWAY_API_IGNORED,
    GATEWAY_FIELD_IGNORED,
    Finding,
    finding,
)
from amimesh.model.snapshot import Snapshot
from amimesh.resources import gateway_api as ga
from amimesh.resources import istio_gateway as gw

WAYPOINT_CLASS = "istio-waypoint"


def gateway_api_findings(snap: Snapshot) -> Iterator[Finding]:
    for r in snap.resources.values():
        if not isinstance(r, ga.Gateway):
            continue
        hbone = [i for i, x in enumerate(r.spec.listeners) if x.protocol == "HBONE"]
        for i in hbone:
            yield finding(
                GATEWAY_API_IGNORED,
                r,
                f"spec.listeners[{i}].protocol",
                "HBONE, the tunnel of Istio's ambient mode between its node proxies and "
                "waypoints, is not served: the listener is accepted and not programmed, as "
                "Ami's sidecars on one machine speak plain TCP and mTLS",
                "remove the listener; each workload's sidecar applies the routes and "
                "policies a waypoint would",
            )
        if r.spec.gatewayClassName == WAYPOINT_CLASS and not hbone:
            yield finding(
                GATEWAY_API_IGNORED,
                r,
                "spec.gatewayClassName",
                "a waypoint (Istio's ambient mode proxy) is not run on one machine: the "
                "Gateway is accepted and none of its listeners is programmed",
                "remove the Gateway, or give it the class istio (or ami) to run it on the "
                "mesh's ingress gateway",
            )


def gateway_findings(snap: Snapshot) -> Iterator[Finding]:
    for r in snap.resources.values():
        if not isinstance(r, gw.Gateway):
            continue
        for i, server in enumerate(r.spec.servers):
            if server.defaultEndpoint is not None:
                yield finding(
                    GATEWAY_FIELD_IGNORED,
                    r,
                    f"spec.servers[{i}].defaultEndpoint",
                    "is ignored: Istio's API marks it as not implemented, and Ami does the "
                    "same; requests are routed by the VirtualServices bound to the Gateway",
                    "remove it, and bind a VirtualService to route the server's traffic",
                )
            tls = server.tls
            if tls is not None and tls.mode == "AUTO_PASSTHROUGH":
                yield finding(
                    GATEWAY_FIELD_IGNORED,
                    r,
                    f"spec.servers[{i}].tls.mode",
                    "AUTO_PASSTHROUGH is Istio's east-west gateway between networks; a mesh "
                    "on one network has none to join, so this server is not served",
                    "remove the server; services reach each other directly in one network",
                )
            if tls is None or tls.mode != "SIMPLE" or tls.caCertificates is None:
                continue
            yield finding(
                GATEWAY_FIELD_IGNORED,
                r,
                f"spec.servers[{i}].tls.caCertificates",
                "is ignored with mode SIMPLE, as Istio ignores it: no client certificate "
                "is asked for",
                "remove it, or use mode MUTUAL to require client certificates",
            )
