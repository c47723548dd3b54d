"""The ingress gateway's ports: which Gateway server ports, on which host ports.

A server port keeps its number on the host when it is >= 1024 and free (so a Gateway
on port 8080 answers on http://127.0.0.1:8080/); a privileged or busy one gets any free
port. `--gateway-port N` puts the first server port on N.

The gateway's TLS credentials (`credentialName`) are decided here too: a credential
NAME with `credentials/NAME/tls.crt` and `tls.key` in the mesh's config dir is read from
those files by the gateway's agent; any other is issued by the mesh CA for the hosts of
the servers that name it (`*` → `localhost` and 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path

from amimesh.agent.config import CredentialSpec
from amimesh.model.proxy import GatewayPort
from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_gateway as gw
from amimesh.runtime.plan import GATEWAY_LABELS
from amimesh.runtime.ports import PortAllocator


class GatewayPortError(RuntimeError):
    pass


def _scheme(server: gw.Server) -> str:
    if gw.is_passthrough(server):
        return "tls"
    if server.port.protocol == "TCP":
        return "tcp"
    return "https" if server.port.protocol == "HTTPS" else "http"


def server_ports(snapshot: Snapshot) -> dict[int, str]:
    """The server ports of the Gateways that select Ami's ingress gateway, each with
    its URL scheme (`https` for an HTTPS server, `tcp` for TCP, `tls` for a TLS
    passthrough, else `http`), in port order."""
    schemes: dict[int, str] = {}
    for g in snapshot.gateways_for(GATEWAY_LABELS):
        for s in g.spec.servers:
            if s.tls is not None and s.tls.mode == "AUTO_PASSTHROUGH":
                continue  # between networks: not served on one
            if schemes.get(s.port.number) != "https":  # one HTTPS server makes it https
                schemes[s.port.number] = _scheme(s)
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


CREDENTIALS_DIR = "credentials"
# What a Gateway host `*` is served as on one machine.
ANY_HOST_NAMES = ("localhost",)
ANY_HOST_IPS = ("127.0.0.1",)


def _server_names(hosts: Iterable[str]) -> tuple[list[str], list[str]]:
    dns: list[str] = []
    ips: list[str] = []
    for host in hosts:
        name = gw.split_host(host)[1].lower()
        if name == "*":
            dns += ANY_HOST_NAMES
            ips += ANY_HOST_IPS
            continue
        try:
            ipaddress.ip_address(name)
        except ValueError:
            dns.append(name)
        else:
            ips.append(name)
    return dns, ips


def credentials(snapshot: Snapshot, config_root: Path) -> tuple[CredentialSpec, ...]:
    """The credentials the ingress gateway serves, by name: from files under
    `config_root/credentials/NAME/` when `tls.crt` and `tls.key` are there, else issued
    by the mesh CA for the hosts of every server naming them."""
    mutual: dict[str, bool] = {}
    hosts: dict[str, list[str]] = {}
    for g in snapshot.gateways_for(GATEWAY_LABELS):
        for s in g.spec.servers:
            name = gw.credential(s.tls) if s.tls is not None else None
            if name is None or s.port.protocol != "HTTPS":
                continue
            mutual[name] = mutual.get(name, False) or (s.tls is not None and s.tls.mode == "MUTUAL")
            hosts.setdefault(name, []).extend(s.hosts)
    out = []
    for name in sorted(hosts):
        home = config_root / CREDENTIALS_DIR / name
        cert, key, ca = home / "tls.crt", home / "tls.key", home / "ca.crt"
        if cert.is_file() and key.is_file():
            out.append(
                CredentialSpec(
                    name,
                    ca_secret=mutual[name],
                    cert_file=str(cert),
                    key_file=str(key),
                    ca_file=str(ca) if ca.is_file() else "",
                )
            )
            continue
        dns, ips = _server_names(hosts[name])
        out.append(
            CredentialSpec(
                name,
                ca_secret=mutual[name],
                dns_names=tuple(dict.fromkeys(dns)),
                ip_addresses=tuple(dict.fromkeys(ips)),
            )
        )
    return tuple(out)
