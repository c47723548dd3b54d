"""The ingress gateway's ports: which Gateway server ports, on which host ports.

A server port keeps its number on the host when it is >= 1024 and free (so a Gateway
on port 8080 answers on http://127.0.0.1:8080/); a privileged or busy one gets any free
port. `--gateway-port N` puts the first server port on N.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from amimesh.model.proxy import GatewayPort
from amimesh.model.snapshot import Snapshot
from amimesh.runtime.plan import GATEWAY_LABELS
from amimesh.runtime.ports import PortAllocator


class GatewayPortError(RuntimeError):
    pass


def server_ports(snapshot: Snapshot) -> dict[int, str]:
    """The server ports of the Gateways that select Ami's ingress gateway, each with
    its URL scheme (`https` for an HTTPS server, else `http`), in port order."""
    schemes: dict[int, str] = {}
    for g in snapshot.gateways_for(GATEWAY_LABELS):
        for s in g.spec.servers:
            if schemes.get(s.port.number) != "https":  # one HTTPS server makes it https
                schemes[s.port.number] = "https" if s.port.protocol == "HTTPS" else "http"
    return dict(sorted(schemes.items()))


def host_ports(
    ports: Iterable[int], allocator: PortAllocator, *, first: int | None = None
) -> tuple[GatewayPort, ...]:
    """Map each server port to a host port; `first` (if given) must be free."""
    out = []
    for i, number in enumerate(ports):
        if i == 0 and first is not None:
            if not allocator.claim(first):
                raise GatewayPortError(f"--gateway-port {first}: the port is in use")
            out.append(GatewayPort(number, first))
        else:
            out.append(GatewayPort(number, allocator.prefer(number)))
    return tuple(out)


def urls(
    ports: Iterable[GatewayPort], schemes: Mapping[int, str], host: str = "127.0.0.1"
) -> tuple[str, ...]:
    return tuple(f"{schemes.get(p.port, 'http')}://{host}:{p.listen_port}/" for p in ports)
