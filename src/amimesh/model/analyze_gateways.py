"""`ami analyze` checks of Gateways: fields Istio accepts and then ignores (a SIMPLE
server's `caCertificates`; a server's `defaultEndpoint`, which Istio's API marks as not
implemented), and an AUTO_PASSTHROUGH server, which means nothing on one network."""

from __future__ import annotations

from collections.abc import Iterator

from amimesh.model.analyze_findings import GATEWAY_FIELD_IGNORED, Finding, finding
from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_gateway as gw


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
