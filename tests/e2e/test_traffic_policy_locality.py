"""Locality load balancing on real traffic: failover by priority, distribution by weight.

Priorities and weights depend on the proxy's locality, which the mesh's `Proxy` does not
carry yet, so this module runs one Envoy configured statically: the generated clusters,
their load assignments arranged for a proxy in `us/a` and inlined, the generated
outbound listener, and a plain route table (one virtual host per service).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
import yaml
from envoy.config.route.v3 import route_components_pb2, route_pb2

from amimesh.agent import bootstrap as bs
from amimesh.agent.envoy import EnvoyProcess
from amimesh.model.snapshot import Instance, Snapshot, build_snapshot
from amimesh.resources import istio_networking as net
from amimesh.resources import kube
from amimesh.translate import clusters, endpoints, listeners, names
from tests.e2e.backend import Backend
from tests.e2e.harness import free_port

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

PROXY_LOCALITY = "us/a"

# service -> [(backend, locality)]
BACKENDS: dict[str, list[tuple[str, str]]] = {
    "failover": [("near-1", "us/a/1"), ("near-2", "us/a/2"), ("far", "eu/b")],
    "spread": [("spread-us", "us/a/1"), ("spread-west", "us/b"), ("spread-eu", "eu/b")],
}

# The instances here are bare backends without sidecars: `tls: DISABLE` sends them plain
# text (registered instances otherwise get mutual TLS).
RULES = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: failover}
spec:
  host: failover
  trafficPolicy:
    tls: {mode: DISABLE}
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 60s
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: spread}
spec:
  host: spread
  trafficPolicy:
    tls: {mode: DISABLE}
    loadBalancer:
      localityLbSetting:
        distribute: [{from: "us/*", to: {"us/*": 100}}]
"""


def resources() -> list[kube.Service | net.DestinationRule]:
    out: list[kube.Service | net.DestinationRule] = [
        kube.Service.model_validate(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 8080}]},
            }
        )
        for name in BACKENDS
    ]
    out += [net.DestinationRule.model_validate(d) for d in yaml.safe_load_all(RULES)]
    return out


def route_table(snap: Snapshot) -> route_pb2.RouteConfiguration:
    table = route_pb2.RouteConfiguration(name=names.OUTBOUND_ROUTE)
    for host, svc in sorted(snap.services.items()):
        for p in svc.ports:
            action = route_components_pb2.RouteAction(cluster=names.outbound_cluster(p.port, host))
            table.virtual_hosts.add(
                name=f"{host}:{p.port}",
                domains=[f"{svc.name}:{p.port}"],
                routes=[
                    route_components_pb2.Route(
                        match=route_components_pb2.RouteMatch(prefix="/"), route=action
                    )
                ],
            )
    return table


@dataclass
class Located:
    envoy: EnvoyProcess
    port: int
    backends: dict[str, Backend]

    def http(self) -> httpx.Client:
        return httpx.Client(proxy=f"http://127.0.0.1:{self.port}", trust_env=False, timeout=10)


@pytest.fixture(scope="module")
def located(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Located]:
    workdir = tmp_path_factory.mktemp("locality")
    backends: dict[str, Backend] = {}
    envoy: EnvoyProcess | None = None
    try:
        instances = []
        for svc, members in BACKENDS.items():
            for name, locality in members:
                b = backends[name] = Backend(name).start()
                labels = {"app": svc}
                ports = {8080: b.port}
                instances.append(
                    Instance(name, name, labels=labels, ports=ports, locality=locality)
                )
        snap = build_snapshot(resources(), instances)
        port, admin = free_port(), free_port()
        config = bs.static_bootstrap(
            clusters=clusters.outbound_clusters(snap),
            load_assignments=endpoints.load_assignments(snap, locality=PROXY_LOCALITY),
            listeners=[listeners.outbound_listener(port)],
            routes=[route_table(snap)],
            admin_port=admin,
        )
        path = bs.write_bootstrap(workdir / "envoy.json", config)
        envoy = EnvoyProcess(path, admin, workdir / "envoy.log")
        envoy.start()
        envoy.wait_ready()
        yield Located(envoy, port, backends)
    finally:
        if envoy is not None:
            envoy.stop()
        # Each stop waits for its server's poll loop: stop them side by side.
        with ThreadPoolExecutor(max_workers=len(backends) or 1) as pool:
            list(pool.map(Backend.stop, backends.values()))


def served_by(resp: httpx.Response) -> str:
    return resp.headers.get("x-backend", "")


def test_failover_to_the_next_locality_when_local_endpoints_fail(located: Located) -> None:
    with located.http() as http:
        before = [served_by(http.get("http://failover:8080/")) for _ in range(20)]
        assert set(before) == {"near-1", "near-2"}  # the proxy's own zone first
        for name in ("near-1", "near-2"):
            located.backends[name].status = 500
        # Each near endpoint is ejected at its first failure, but Envoy recomputes the
        # load of each priority at the next outlier-detection interval (1s) only.
        deadline, streak = time.monotonic() + 5, 0
        while streak < 20 and time.monotonic() < deadline:
            far = served_by(http.get("http://failover:8080/")) == "far"
            streak = streak + 1 if far else 0
        after = [served_by(http.get("http://failover:8080/")) for _ in range(20)]
    assert after == ["far"] * 20


def test_distribute_keeps_traffic_in_the_named_localities(located: Located) -> None:
    with located.http() as http:
        served = Counter(served_by(http.get("http://spread:8080/")) for _ in range(40))
    assert set(served) == {"spread-us", "spread-west"}  # us/* only; eu/b gets nothing
