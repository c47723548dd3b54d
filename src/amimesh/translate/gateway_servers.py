"""Which Gateway servers a gateway proxy serves, grouped by port: the plan that
`gateway_listeners` and `gateway_routes` both follow, so listeners never name a route
table that is not generated.

- A gateway proxy serves every Gateway whose `selector` matches its labels, in any
  namespace (`Snapshot.gateways_for`), in (namespace, name) order.
- A server port is served only where the proxy maps it to a host port
  (`Proxy.gateway_ports`); a server port with no mapping is skipped (the proxy does not
  listen for it).
- Servers of several Gateways on one port share one listener. The first server on a
  port decides whether it is plain text (HTTP, HTTP2, GRPC, GRPC-WEB: one route table
  `http.PORT` for all of them, as Istio) or HTTPS (one filter chain per server, picked
  by SNI, each with its table `https.PORT.PORTNAME.GATEWAY.NAMESPACE`). A later server
  of the other kind on that port is skipped; so is an HTTPS server whose SNI names were
  all taken by earlier servers on the port (Envoy rejects two chains matching alike).
- TCP servers, and TLS (or HTTPS) servers with mode PASSTHROUGH, are served by the
  VirtualServices' `tcp` and `tls` routes (`gateway_l4`); servers of one kind share a
  port, as above.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_gateway as gw


@dataclass(frozen=True)
class BoundServer:
    """One server of one Gateway, as a proxy serves it."""

    gateway: gw.Gateway
    server: gw.Server
    route_name: str
    # SNI names that select this server's filter chain; () for any (HTTPS only).
    server_names: tuple[str, ...] = ()

    @property
    def ref(self) -> tuple[str, str]:
        return (self.gateway.namespace, self.gateway.name)

    @property
    def https_redirect(self) -> bool:
        tls = self.server.tls
        return tls is not None and tls.httpsRedirect


@dataclass(frozen=True)
class PortPlan:
    port: int  # the server port number, as the Gateways write it
    listen_port: int  # where the proxy listens for it
    tls: bool  # HTTPS, terminated here
    servers: tuple[BoundServer, ...]
    # "tcp" (TCP servers: tcp routes) or "passthrough" (TLS or HTTPS servers with
    # mode PASSTHROUGH: tls routes, by SNI); "" for HTTP and terminated HTTPS.
    l4: str = ""


def kind_of(server: gw.Server) -> str:
    """How a port is served: "http", "https", "tcp" or "passthrough"."""
    if server.port.protocol == "TCP":
        return "tcp"
    if gw.is_passthrough(server):
        return "passthrough"
    return "https" if server.port.protocol == "HTTPS" else "http"


def sharing_key(proxy: Proxy) -> Hashable:
    """Gateway proxies with equal keys get equal listeners and routes from a snapshot
    (namespace and labels also decide which security policies select them; the
    workload names the proxy in the metrics' peer header). Every field left out is one
    the gateway's translation does not read (tests/unit/test_translate_scope.py)."""
    return (
        proxy.workload,
        proxy.namespace,
        tuple(sorted(proxy.labels.items())),
        proxy.gateway_ports,
        proxy.address,
        proxy.access_log,
        proxy.access_log_format,
    )


def http_route_name(port: int) -> str:
    return f"http.{port}"


def https_route_name(port: int, port_name: str, gateway: gw.Gateway) -> str:
    return f"https.{port}.{port_name}.{gateway.name}.{gateway.namespace}"


def server_names(server: gw.Server) -> tuple[str, ...]:
    """The SNI names of an HTTPS server: its hosts, or () when one of them is `*`."""
    names = [gw.split_host(h)[1].lower() for h in server.hosts]
    return () if "*" in names else tuple(dict.fromkeys(names))


def plan(snap: Snapshot, proxy: Proxy) -> list[PortPlan]:
    """The ports `proxy` serves, in the order of their first server."""
    listen = {p.port: p.listen_port for p in proxy.gateway_ports}
    ports: dict[int, list[BoundServer]] = {}
    kinds: dict[int, str] = {}
    taken: dict[int, set[str]] = {}  # SNI names (and "" for any) used per HTTPS port
    for gateway in snap.gateways_for(proxy.labels):
        for server in gateway.spec.servers:
            number = server.port.number
            if number not in listen:
                continue
            if server.tls is not None and server.tls.mode == "AUTO_PASSTHROUGH":
                continue  # between networks: nothing to serve on one (`ami analyze`)
            kind = kind_of(server)
            if kinds.setdefault(number, kind) != kind:
                continue
            if kind in ("tcp", "passthrough"):
                name = f"{kind}.{number}"
                ports.setdefault(number, []).append(BoundServer(gateway, server, name))
                continue
            if kind == "http":
                ports.setdefault(number, []).append(
                    BoundServer(gateway, server, http_route_name(number))
                )
                continue
            used = taken.setdefault(number, set())
            names = server_names(server)
            left = tuple(n for n in names if n not in used)
            if (names and not left) or (not names and "" in used):
                continue
            used.update(left or ("",))
            name = https_route_name(number, server.port.name, gateway)
            ports.setdefault(number, []).append(BoundServer(gateway, server, name, left))
    return [
        PortPlan(
            n,
            listen[n],
            kinds[n] == "https",
            tuple(s),
            kinds[n] if kinds[n] in ("tcp", "passthrough") else "",
        )
        for n, s in ports.items()
    ]
