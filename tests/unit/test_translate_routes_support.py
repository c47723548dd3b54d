"""Helpers for the route translation tests (no tests here).

- resource builders (`svc`, `vs`, `dr`, `se`) and `table()` → the "outbound" RouteConfiguration;
- `static_bootstrap()`: generated route tables embedded in a static Envoy bootstrap, with a
  STATIC cluster for every cluster name they reference and the outbound listener's filter
  chain (fault, cors, router), for `envoy_validate()` (`envoy --mode validate`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format
from google.protobuf.message import Message

from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import build_snapshot
from amimesh.resources import istio_networking as net
from amimesh.resources import kube
from amimesh.resources.meta import Resource
from amimesh.translate import routes

ENVOY = shutil.which("envoy", path=str(Path(__file__).resolve().parents[2] / ".venv/bin")) or (
    shutil.which("envoy") or "envoy"
)

REVIEWS = "reviews.default.svc.cluster.local"
DEFAULT_RETRY: dict[str, Any] = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/"
                "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
            },
        }
    ],
    "host_selection_retry_max_attempts": "5",
    "retriable_status_codes": [503],
}


# --- resources -------------------------------------------------------------------------


def svc(name: str, *ports: int | tuple[str, int], ns: str = "default") -> kube.Service:
    """A Service; a port is a number (named `http-N`) or (name, number)."""
    specs = [
        {"name": f"http-{p}", "port": p} if isinstance(p, int) else {"name": p[0], "port": p[1]}
        for p in ports or (9080,)
    ]
    return kube.Service.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": specs},
        }
    )


def _istio(cls: type[Resource], name: str, spec: Mapping[str, Any], ns: str) -> Any:
    return cls.model_validate(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": cls.KIND,
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }
    )


def vs(
    name: str,
    hosts: Sequence[str],
    http: Sequence[Mapping[str, Any]],
    ns: str = "default",
    **extra: Any,
) -> net.VirtualService:
    spec = {"http": list(http), **extra}
    if hosts:
        spec["hosts"] = list(hosts)
    result: net.VirtualService = _istio(net.VirtualService, name, spec, ns)
    return result


def dr(host: str, *subsets: str, ns: str = "default", **extra: Any) -> net.DestinationRule:
    spec = {"host": host, "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}
    result: net.DestinationRule = _istio(
        net.DestinationRule, host.split(".")[0], {**spec, **extra}, ns
    )
    return result


def se(
    name: str, hosts: Sequence[str], ports: Sequence[Mapping[str, Any]], ns: str = "default"
) -> net.ServiceEntry:
    result: net.ServiceEntry = _istio(
        net.ServiceEntry, name, {"hosts": list(hosts), "ports": list(ports)}, ns
    )
    return result


def dest(
    host: str,
    subset: str | None = None,
    weight: int | None = None,
    *,
    port: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An HTTPRouteDestination; `extra` adds fields such as `headers`."""
    d: dict[str, Any] = {"host": host}
    if subset:
        d["subset"] = subset
    if port is not None:
        d["port"] = {"number": port}
    out: dict[str, Any] = {"destination": d, **extra}
    if weight is not None:
        out["weight"] = weight
    return out


# Every table built by `table()`, so one Envoy run can validate them all.
BUILT: list[route_pb2.RouteConfiguration] = []


def table(
    resources: Iterable[Resource], proxy: Proxy | None = None
) -> route_pb2.RouteConfiguration:
    snap = build_snapshot(list(resources))
    configs = routes.route_configs(snap, proxy or Proxy(id="client.default"))
    assert [c.name for c in configs] == ["outbound"]
    BUILT.append(configs[0])
    return configs[0]


def vhost(config: route_pb2.RouteConfiguration, name: str) -> Any:
    found = [v for v in config.virtual_hosts if v.name == name]
    assert found, [v.name for v in config.virtual_hosts]
    return found[0]


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def route_dicts(config: route_pb2.RouteConfiguration, vhost_name: str) -> list[dict[str, Any]]:
    """The routes of one virtual host, without the metadata and decorator noise."""
    out = []
    for r in vhost(config, vhost_name).routes:
        d = as_dict(r)
        d.pop("metadata", None)
        d.pop("decorator", None)
        out.append(d)
    return out


# --- Envoy -----------------------------------------------------------------------------


def referenced_clusters(configs: Iterable[route_pb2.RouteConfiguration]) -> list[str]:
    found: dict[str, None] = {}
    for c in configs:
        for v in c.virtual_hosts:
            for r in v.routes:
                if not r.HasField("route"):
                    continue
                if r.route.cluster:
                    found[r.route.cluster] = None
                for w in r.route.weighted_clusters.clusters:
                    found[w.name] = None
                for m in r.route.request_mirror_policies:
                    found[m.cluster] = None
    return list(found)


def static_bootstrap(
    configs: Sequence[route_pb2.RouteConfiguration],
    *,
    listen_ports: Sequence[int],
    admin_port: int,
) -> dict[str, Any]:
    """A bootstrap with one explicit-proxy listener per route table (inline).

    Every cluster the tables name is STATIC (at 127.0.0.1:1: validation connects nowhere).
    """
    b = bootstrap_pb2.Bootstrap()
    b.node.id = "routes-test"
    b.node.cluster = "routes-test"
    b.admin.address.socket_address.address = "127.0.0.1"
    b.admin.address.socket_address.port_value = admin_port
    for i, (config, port) in enumerate(zip(configs, listen_ports, strict=True)):
        b.static_resources.listeners.append(_listener(f"outbound-{i}", port, config))
    for name in referenced_clusters(configs):
        b.static_resources.clusters.append(_cluster(name, "127.0.0.1", 1))
    return json_format.MessageToDict(b)


def _listener(name: str, port: int, config: route_pb2.RouteConfiguration) -> listener_pb2.Listener:
    m = hcm_pb2.HttpConnectionManager(stat_prefix=name)
    m.route_config.CopyFrom(config)
    m.http_protocol_options.allow_absolute_url.value = True
    for filter_name, cfg in (
        ("envoy.filters.http.fault", fault_pb2.HTTPFault()),
        ("envoy.filters.http.cors", cors_pb2.Cors()),
        ("envoy.filters.http.router", router_pb2.Router()),
    ):
        m.http_filters.add(name=filter_name).typed_config.Pack(cfg)
    out = listener_pb2.Listener(name=name)
    out.address.socket_address.address = "127.0.0.1"
    out.address.socket_address.port_value = port
    out.filter_chains.add().filters.add(
        name="envoy.filters.network.http_connection_manager"
    ).typed_config.Pack(m)
    return out


def _cluster(name: str, host: str, port: int) -> cluster_pb2.Cluster:
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)
    c.connect_timeout.FromMilliseconds(1000)
    c.load_assignment.cluster_name = name
    ep = c.load_assignment.endpoints.add().lb_endpoints.add().endpoint
    ep.address.socket_address.address = host
    ep.address.socket_address.port_value = port
    return c


def envoy_validate(bootstrap: Mapping[str, Any], workdir: Path) -> None:
    """Run `envoy --mode validate` on `bootstrap`; fail with Envoy's output if it rejects it."""
    path = workdir / "bootstrap.json"
    path.write_text(json.dumps(bootstrap, indent=1))
    proc = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
