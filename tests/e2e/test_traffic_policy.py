"""DestinationRule traffic policies and ServiceEntry resolutions on real traffic.

The whole path is real: the control plane pushes clusters, endpoints, listeners and
routes over xDS to sidecar Envoys; a client sidecar sends to workloads' sidecars.
Everything is set up once for the module (one config push); each test owns its services.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from amimesh.translate import names
from tests.e2e.backend import Backend
from tests.e2e.harness import Mesh, Sidecar

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

# service -> its DestinationRule's trafficPolicy (YAML) and how many workloads it has.
POLICIES: dict[str, tuple[str, int]] = {
    "od": (
        """
loadBalancer: {simple: ROUND_ROBIN}
outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 60s,
                   maxEjectionPercent: 100}
""",
        2,
    ),
    "cb": (
        """
connectionPool:
  tcp: {maxConnections: 1}
  http: {http1MaxPendingRequests: 1}
""",
        1,
    ),
    "ch": ("loadBalancer: {consistentHash: {httpHeaderName: x-user}}", 3),
    "lr": ("loadBalancer: {simple: LEAST_REQUEST}", 3),
    "rnd": ("loadBalancer: {simple: RANDOM}", 3),
}

ENTRIES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns}
spec:
  hosts: [dns.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: localhost, ports: {http: %(dns)d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: anywhere}
spec:
  hosts: [localhost]
  ports: [{number: %(dfp)d, name: http, protocol: HTTP}]
  resolution: NONE
"""


def service(name: str, policy: str) -> str:
    indented = "\n".join("    " + line for line in policy.strip().splitlines())
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: {name}
  trafficPolicy:
{indented}
"""


@dataclass
class World:
    client: Sidecar
    workloads: dict[str, Sidecar]
    external: dict[str, Backend] = field(default_factory=dict)

    def backend(self, workload: str) -> Backend:
        b = self.workloads[workload].backend
        assert b is not None
        return b


@pytest.fixture(scope="module")
def world(module_mesh: Mesh) -> Iterator[World]:
    external = {name: Backend(name).start() for name in ("dns", "dfp")}
    try:
        docs = [service(name, policy) for name, (policy, _) in POLICIES.items()]
        docs.append(ENTRIES % {k: b.port for k, b in external.items()})
        module_mesh.apply("\n---\n".join(docs))
        workloads = {
            f"{name}-{i}": module_mesh.workload(f"{name}-{i}", {"app": name})
            for name, (_, count) in POLICIES.items()
            for i in range(count)
        }
        client = module_mesh.client("policy-client")
        module_mesh.wait_synced()
        yield World(client, workloads, external)
    finally:
        for b in external.values():
            b.stop()


def served_by(resp: httpx.Response) -> str:
    return resp.headers.get("x-backend", "")


def host_flags(client: Sidecar, cluster: str) -> dict[int, str]:
    """Endpoint port -> health flags in the client's view of `cluster` (admin /clusters)."""
    pattern = re.escape(cluster) + r"::127\.0\.0\.1:(\d+)::health_flags::(.*)"
    found = re.finditer(pattern, client.envoy.admin("/clusters"))
    return {int(m.group(1)): m.group(2).strip() for m in found}


def listen_port(sidecar: Sidecar) -> int:
    assert sidecar.instance is not None
    return sidecar.instance.ports[8080]


def test_outlier_detection_ejects_a_failing_endpoint(world: World) -> None:
    bad = world.backend("od-1")
    bad.status = 500
    with world.client.http() as http:
        responses = [http.get("http://od:8080/") for _ in range(30)]
    assert [r.status_code for r in responses[-20:]] == [200] * 20
    assert {served_by(r) for r in responses[-20:]} == {"od-0"}
    assert 1 <= bad.count() <= 3  # ejected after its second consecutive 5xx
    cluster = names.outbound_cluster(8080, "od.default.svc.cluster.local")
    flags = host_flags(world.client, cluster)
    assert "failed_outlier_check" in flags[listen_port(world.workloads["od-1"])]
    assert "failed_outlier_check" not in flags[listen_port(world.workloads["od-0"])]


def test_circuit_breaker_rejects_overflow_with_503_uo(world: World) -> None:
    slow = {"x-echo-delay": "0.5"}
    with world.client.http(limits=httpx.Limits(max_connections=30)) as http:
        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(lambda _: http.get("http://cb:8080/", headers=slow), range(20)))
    ok = [r for r in results if r.status_code == 200]
    overflow = [r for r in results if r.status_code == 503]
    assert len(ok) + len(overflow) == 20
    assert ok and overflow
    assert all(r.headers.get("x-envoy-overloaded") == "true" for r in overflow)
    stats = world.client.envoy.admin("/stats?filter=outbound.8080..cb.*pending_overflow")
    assert re.search(r"upstream_rq_pending_overflow: [1-9]", stats), stats


def test_consistent_hash_pins_a_key_to_one_endpoint(world: World) -> None:
    with world.client.http() as http:
        alice = {
            served_by(http.get("http://ch:8080/", headers={"x-user": "alice"})) for _ in range(50)
        }
        users = {
            served_by(http.get("http://ch:8080/", headers={"x-user": f"user-{i}"}))
            for i in range(40)
        }
    assert len(alice) == 1 and alice <= {"ch-0", "ch-1", "ch-2"}
    assert len(users) >= 2


@pytest.mark.parametrize("name", ["lr", "rnd"])
def test_least_request_and_random_spread_load(world: World, name: str) -> None:
    with world.client.http() as http:
        responses = [http.get(f"http://{name}:8080/") for _ in range(60)]
    assert {r.status_code for r in responses} == {200}
    assert len(Counter(served_by(r) for r in responses)) >= 2


def test_dns_service_entry_resolves_its_endpoints(world: World) -> None:
    with world.client.http() as http:
        resp = http.get("http://dns.test/")
    assert resp.status_code == 200
    assert served_by(resp) == "dns"


def test_none_service_entry_goes_where_the_url_says(world: World) -> None:
    port = world.external["dfp"].port
    with world.client.http() as http:
        resp = http.get(f"http://localhost:{port}/hello")
    assert resp.status_code == 200
    assert served_by(resp) == "dfp"
    assert resp.json()["path"] == "/hello"
