"""Which Sidecar and ProxyConfig apply to a proxy, what a Sidecar's egress hosts import,
and what the generator gives a scoped proxy (Istio's semantics)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from amimesh.agent.bootstrap import envoy_command
from amimesh.model import sidecars
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import parse_documents
from amimesh.resources.workload import Workload
from amimesh.runtime import plan
from amimesh.runtime.state import StateDir
from amimesh.translate import routes
from amimesh.translate.built import CLUSTER, ENDPOINT, ROUTE
from amimesh.translate.generate import Generator

SERVICES = "\n---\n".join(
    f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n"
    f"spec: {{selector: {{app: {name}}}, ports: [{{name: http, port: 80}}, "
    f"{{name: http-admin, port: 9000}}]}}\n"
    for name, ns in (("a", "shop"), ("b", "shop"), ("c", "shop"), ("d", "other"))
)
SE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: other}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"""

CLIENT = Proxy(
    id="client-0.shop",
    workload="client",
    namespace="shop",
    labels={"app": "client"},
    outbound_port=15001,
    inbound=(InboundPort(port=8080, listen_port=16000, app_port=16001),),
)


def sidecar(name: str, namespace: str, body: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec: {body}\n"
    )


def snapshot(*texts: str, previous: Snapshot | None = None) -> Snapshot:
    result = parse_documents("\n---\n".join([SERVICES, SE, *texts]), "mesh.yaml")
    assert not result.errors, [str(e) for e in result.errors]
    return build_snapshot(result.resources, previous=previous)


def test_workload_sidecar_then_namespace_then_root_default() -> None:
    snap = snapshot(
        sidecar("root", "istio-system", "{egress: [{hosts: ['./*']}]}"),
        sidecar("ns", "shop", "{egress: [{hosts: ['*/*']}]}"),
        sidecar(
            "mine",
            "shop",
            "{workloadSelector: {labels: {app: client}}, egress: [{hosts: ['~/*']}]}",
        ),
        sidecar("root-selected", "istio-system", "{workloadSelector: {labels: {app: x}}}"),
    )
    assert (found := sidecars.sidecar_for(snap, "shop", {"app": "client"})) is not None
    assert found.name == "mine"
    assert (found := sidecars.sidecar_for(snap, "shop", {"app": "other"})) is not None
    assert found.name == "ns"
    assert (found := sidecars.sidecar_for(snap, "other", {"app": "x"})) is not None
    assert found.name == "root"  # a selector in the root namespace selects only there
    assert sidecars.sidecar_for(snapshot(), "shop", {}) is None


def imported(snap: Snapshot, proxy: Proxy = CLIENT) -> set[str]:
    imports = routes.imports_of(snap, proxy)
    return {
        f"{svc.hostname}:{p.port}"
        for svc in snap.services.values()
        for p in svc.ports
        if imports.allows(svc, p.port)
    }


@pytest.mark.parametrize(
    ("hosts", "port", "want"),
    [
        (["./*"], None, {"a", "b", "c"}),
        (["*/*"], None, {"a", "b", "c", "d", "api.example.com"}),
        (["~/*"], None, set()),
        (["other/*"], None, {"d", "api.example.com"}),
        (["*/api.example.com", "./b.shop.svc.cluster.local"], None, {"api.example.com", "b"}),
        (["*/*.example.com"], None, {"api.example.com"}),
        (["shop/*.shop.svc.cluster.local"], 9000, {"a", "b", "c"}),
    ],
)
def test_egress_hosts(hosts: list[str], port: int | None, want: set[str]) -> None:
    listener = {"hosts": hosts, **({"port": {"number": port, "name": "p"}} if port else {})}
    snap = snapshot(sidecar("s", "shop", str({"egress": [listener]})))
    full = {
        h if "." in h else f"{h}.{'other' if h == 'd' else 'shop'}.svc.cluster.local" for h in want
    }
    ports = (port,) if port else (80, 9000)
    expected = {
        f"{h}:{p}" for h in full for p in ports if not (h == "api.example.com" and p == 9000)
    }
    assert imported(snap) == expected


def test_the_root_default_reads_dot_as_the_proxys_namespace() -> None:
    snap = snapshot(sidecar("default", "istio-system", "{egress: [{hosts: ['./*']}]}"))
    assert {h.split(":")[0] for h in imported(snap)} == {
        "a.shop.svc.cluster.local",
        "b.shop.svc.cluster.local",
        "c.shop.svc.cluster.local",
    }
    other = dataclasses.replace(CLIENT, id="d-0.other", namespace="other")
    assert {h.split(":")[0] for h in imported(snap, other)} == {
        "d.other.svc.cluster.local",
        "api.example.com",  # a ServiceEntry's namespace is its own
    }


SIDECAR_OF_CLIENT = sidecar(
    "client",
    "shop",
    "{workloadSelector: {labels: {app: client}}, egress: [{hosts: "
    "['./a.shop.svc.cluster.local', 'other/d.other.svc.cluster.local']}], "
    "outboundTrafficPolicy: {mode: REGISTRY_ONLY}}",
)


def test_a_scoped_proxy_gets_only_what_it_imports() -> None:
    snap = snapshot(SIDECAR_OF_CLIENT)
    gen = Generator(snap)
    scoped = gen.generate(CLIENT)
    other = gen.generate(dataclasses.replace(CLIENT, id="x-0.shop", labels={"app": "x"}))
    want = {
        f"outbound|{p}||{h}"
        for h in ("a.shop.svc.cluster.local", "d.other.svc.cluster.local")
        for p in (80, 9000)
    }
    assert {n for n in scoped[CLUSTER] if n.startswith("outbound|")} == want
    assert set(scoped[ENDPOINT]) == want
    vhosts = [v.name for v in scoped[ROUTE]["outbound"].message.virtual_hosts]
    assert vhosts == [
        "a.shop.svc.cluster.local:80",
        "a.shop.svc.cluster.local:9000",
        "d.other.svc.cluster.local:80",
        "d.other.svc.cluster.local:9000",
        "block_all",
    ]
    (block,) = scoped[ROUTE]["outbound"].message.virtual_hosts[-1].routes
    assert block.direct_response.status == 502
    assert len(other[CLUSTER]) > len(scoped[CLUSTER])
    assert "block_all" not in [v.name for v in other[ROUTE]["outbound"].message.virtual_hosts]
    # Smaller tables are still shared: a second scoped proxy gets the very same ones.
    twin = gen.generate(dataclasses.replace(CLIENT, id="client-1.shop"))
    assert twin[ENDPOINT] is scoped[ENDPOINT]
    assert twin[ROUTE]["outbound"] is scoped[ROUTE]["outbound"]
    assert routes.sharing_key(snap, CLIENT) != routes.sharing_key(
        snap, dataclasses.replace(CLIENT, labels={"app": "x"})
    )
    # A change to a service the proxy does not import leaves its tables the same objects.
    rule = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: c, namespace: shop}\nspec: {host: c, trafficPolicy: "
        "{connectionPool: {tcp: {maxConnections: 5}}}}\n"
    )
    gen.update(snapshot(SIDECAR_OF_CLIENT, rule, previous=snap))
    again = gen.generate(CLIENT)
    assert again[ENDPOINT] is scoped[ENDPOINT]
    assert again[CLUSTER] is scoped[CLUSTER]


def test_allow_any_adds_the_passthrough_cluster() -> None:
    snap = snapshot(sidecar("ns", "shop", "{outboundTrafficPolicy: {mode: ALLOW_ANY}}"))
    config = Generator(snap).generate(CLIENT)
    assert "PassthroughCluster" in config[CLUSTER]
    last = config[ROUTE]["outbound"].message.virtual_hosts[-1]
    assert (last.name, list(last.domains)) == ("allow_any", ["*"])
    assert last.routes[0].route.cluster == "PassthroughCluster"


def test_bad_egress_hosts_and_endpoints_are_refused_with_their_path() -> None:
    bad = sidecar(
        "bad",
        "shop",
        "{egress: [{hosts: ['reviews', './http://x', 'Bad_NS/*']}], "
        "ingress: [{port: {number: 80, name: http}, defaultEndpoint: 'unix:///sock'}]}",
    )
    errors = parse_documents(bad, "sc.yaml").errors
    assert [e.field for e in errors] == [
        "spec.egress[0].hosts[0]",
        "spec.egress[0].hosts[1]",
        "spec.egress[0].hosts[2]",
        "spec.ingress[0].defaultEndpoint",
    ]


def proxy_config(name: str, namespace: str, body: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1beta1\nkind: ProxyConfig\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec: {body}\n"
    )


def test_proxy_config_precedence_workload_over_namespace_over_root() -> None:
    snap = snapshot(
        proxy_config(
            "mesh", "istio-system", "{concurrency: 4, environmentVariables: {A: root, B: root}}"
        ),
        proxy_config("ns", "shop", "{environmentVariables: {B: ns}}"),
        proxy_config("mine", "shop", "{selector: {matchLabels: {app: client}}, concurrency: 1}"),
    )
    got = sidecars.proxy_settings(snap, "shop", {"app": "client"})
    assert got == sidecars.ProxySettings(1, (("A", "root"), ("B", "ns")))
    assert sidecars.proxy_settings(snap, "shop", {"app": "x"}).concurrency == 4
    assert sidecars.proxy_settings(snap, "other", {}).environment == (("A", "root"), ("B", "root"))


def test_proxy_config_reaches_envoys_command_line(tmp_path: Path) -> None:
    text = (
        "apiVersion: ami.dev/v1alpha1\nkind: Workload\nmetadata: {name: web, labels: {app: web}}\n"
        "spec: {command: [python3], ports: [{port: 8080}]}\n"
    )
    result = parse_documents(
        text
        + "---\n"
        + proxy_config(
            "web",
            "default",
            "{selector: {matchLabels: {app: web}}, concurrency: 3, "
            "environmentVariables: {ENVOY_X: y}, image: {imageType: distroless}}",
        ),
        "w.yaml",
    )
    assert not result.errors, [str(e) for e in result.errors]
    snap = build_snapshot(result.resources)
    (workload,) = [r for r in result.resources if isinstance(r, Workload)]
    ports = iter(range(20000, 20100))
    spec = plan.workload_instance(
        workload,
        0,
        services=snap.services.values(),
        allocate=lambda: next(ports),
        state=StateDir(tmp_path),
        xds_port=15010,
        config_dir=tmp_path,
        settings=sidecars.proxy_settings(snap, "default", {"app": "web"}),
    )
    envoy = spec.agent.envoy
    assert (envoy.concurrency, dict(envoy.env)) == (3, {"ENVOY_X": "y"})
    argv = envoy_command(Path("envoy.json"), concurrency=envoy.concurrency)
    assert argv[argv.index("--concurrency") + 1] == "3"
