"""Outbound clusters' transport: auto mutual TLS, DestinationRule `tls`; endpoint metadata;
envoy validate (with the static `sds-grpc` cluster every proxy has)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format

from amimesh.agent import bootstrap as bs
from amimesh.model.snapshot import Instance, Snapshot, build_snapshot
from amimesh.resources import parse_documents
from amimesh.translate import clusters, endpoints

MESH = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}, {name: grpc, port: 7070}, {name: tcp-db, port: 5000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: legacy, namespace: shop}
spec: {address: 10.0.0.9, labels: {app: reviews, version: v1}, serviceAccount: legacy}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: HTTPS}, {number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: anything}
spec:
  hosts: ["*.example.org"]
  resolution: NONE
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms}
spec:
  hosts: [vms.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.1.0.1, labels: {security.istio.io/tlsMode: istio}, serviceAccount: vm}
  - {address: 10.1.0.2}
"""

REVIEWS = "reviews.shop.svc.cluster.local"
SDS = {
    "api_config_source": {
        "api_type": "GRPC",
        "transport_api_version": "V3",
        "grpc_services": [
            {
                "envoy_grpc": {
                    "cluster_name": "sds-grpc",
                    "retry_policy": {
                        "retry_back_off": {"base_interval": "0.100s", "max_interval": "1s"}
                    },
                }
            }
        ],
    },
    "resource_api_version": "V3",
}


def instance(name: str, version: str, sa: str, port: int) -> Instance:
    return Instance(
        id=f"{name}.shop",
        workload=name,
        namespace="shop",
        labels={"app": "reviews", "version": version},
        service_account=sa,
        ports={9080: port, 7070: port + 1, 5000: port + 2},
    )


INSTANCES = [
    instance("reviews-v1", "v1", "reviews", 31000),
    instance("reviews-v2", "v2", "rv2", 32000),
]


def snapshot(*extra: str) -> Snapshot:
    result = parse_documents("\n---\n".join([MESH, *extra]), "mesh.yaml")
    assert result.ok, [str(e) for e in result.errors]
    return build_snapshot(result.resources, INSTANCES)


def dr(tls: str, host: str = "reviews", subsets: str = "") -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        f"metadata: {{name: dr-{host.replace('*', 'w')}, namespace: shop}}\n"
        f"spec:\n  host: '{host}'\n  trafficPolicy: {{tls: {tls}}}\n" + subsets
    )


def as_dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def by_name(snap: Snapshot) -> dict[str, Any]:
    return {c.name: c for c in clusters.outbound_clusters(snap)}


def tls_context(socket: Any) -> dict[str, Any]:
    assert socket.name == "envoy.transport_sockets.tls"
    ctx = tls_pb2.UpstreamTlsContext()
    assert socket.typed_config.Unpack(ctx)
    return as_dict(ctx)


def mesh_context(sans: list[str], sni: str, alpn: list[str]) -> dict[str, Any]:
    common: dict[str, Any] = {
        "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": SDS}],
        "combined_validation_context": {
            "default_validation_context": {
                "match_typed_subject_alt_names": [
                    {"san_type": "URI", "matcher": {"exact": s}} for s in sans
                ]
            },
            "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": SDS},
        },
    }
    if alpn:
        common["alpn_protocols"] = alpn
    return {"common_tls_context": common, "sni": sni}


MESH_SANS = [
    "spiffe://cluster.local/ns/shop/sa/reviews",
    "spiffe://cluster.local/ns/shop/sa/rv2",
]


def test_mesh_services_get_auto_mtls_by_endpoint_metadata() -> None:
    c = by_name(snapshot())[f"outbound|9080||{REVIEWS}"]
    assert not c.HasField("transport_socket")
    mesh, plain = c.transport_socket_matches
    assert (mesh.name, as_dict(mesh.match)) == ("tlsMode-istio", {"tlsMode": "istio"})
    # Only the identities of endpoints reached with mTLS (not the plain WorkloadEntry's).
    assert tls_context(mesh.transport_socket) == mesh_context(
        MESH_SANS, f"outbound_.9080_._.{REVIEWS}", ["http/1.1"]
    )
    assert (plain.name, as_dict(plain.match)) == ("tlsMode-disabled", {})
    assert plain.transport_socket.name == "envoy.transport_sockets.raw_buffer"


def test_a_service_without_sidecar_endpoints_needs_no_certificate() -> None:
    # Only the plain WorkloadEntry: plain text, no socket that waits for SDS secrets.
    result = parse_documents(MESH, "mesh.yaml")
    assert result.ok
    c = by_name(build_snapshot(result.resources, []))[f"outbound|9080||{REVIEWS}"]
    assert not c.HasField("transport_socket")
    assert list(c.transport_socket_matches) == []
    # An instance with a sidecar arrives: the cluster gains the mutual TLS match.
    c = by_name(build_snapshot(result.resources, INSTANCES[:1]))[f"outbound|9080||{REVIEWS}"]
    assert [m.name for m in c.transport_socket_matches] == ["tlsMode-istio", "tlsMode-disabled"]


WORKLOADS = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec: {command: [python, -m, reviews], serviceAccount: reviews, ports: [{port: 9080}]}
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: reviews-next, namespace: shop, labels: {app: reviews, version: next}}
spec: {command: [python, -m, reviews], serviceAccount: next, replicas: 0,
       ports: [{port: 9080}]}
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: reviews-db, namespace: shop, labels: {app: reviews}}
spec: {command: [db], serviceAccount: db, ports: [{port: 5000}]}
---
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: reviews, namespace: other, labels: {app: reviews}}
spec: {command: [python, -m, reviews], serviceAccount: elsewhere, ports: [{port: 9080}]}
"""


def test_a_services_workloads_count_before_their_instances_are_ready() -> None:
    # The identities a service's Workloads run as are known from config: its cluster
    # verifies them from the first push, and stays the same (no CDS update, no new TLS
    # context in every proxy) as instances start and become ready.
    result = parse_documents(MESH + "---\n" + WORKLOADS, "mesh.yaml")
    assert result.ok, [str(e) for e in result.errors]
    name = f"outbound|9080||{REVIEWS}"
    before = build_snapshot(result.resources, [])
    assert before.endpoints[(REVIEWS, 9080)][0].address == "10.0.0.9"  # the WorkloadEntry
    cold = by_name(before)[name]
    mesh, _ = cold.transport_socket_matches
    sans = tls_context(mesh.transport_socket)["common_tls_context"]["combined_validation_context"]
    # Each Workload of the service in its namespace, at zero replicas too; not the
    # one that has no such port, nor the one in another namespace.
    assert [
        m["matcher"]["exact"]
        for m in sans["default_validation_context"]["match_typed_subject_alt_names"]
    ] == ["spiffe://cluster.local/ns/shop/sa/next", "spiffe://cluster.local/ns/shop/sa/reviews"]
    ready = build_snapshot(result.resources, INSTANCES[:1], previous=before)
    assert by_name(ready)[name].SerializeToString(deterministic=True) == cold.SerializeToString(
        deterministic=True
    )
    # The database port's only workload: mutual TLS to it, its identity alone.
    db = by_name(before)[f"outbound|5000||{REVIEWS}"].transport_socket_matches[0]
    assert tls_context(db.transport_socket)["common_tls_context"]["combined_validation_context"][
        "default_validation_context"
    ]["match_typed_subject_alt_names"] == [
        {"san_type": "URI", "matcher": {"exact": "spiffe://cluster.local/ns/shop/sa/db"}}
    ]


def test_a_workload_whose_port_disables_mtls_adds_no_identity() -> None:
    result = parse_documents(
        MESH
        + "---\n"
        + WORKLOADS
        + "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        "metadata: {name: db, namespace: shop}\nspec: {mtls: {mode: DISABLE}}\n",
        "mesh.yaml",
    )
    assert result.ok, [str(e) for e in result.errors]
    c = by_name(build_snapshot(result.resources, []))[f"outbound|9080||{REVIEWS}"]
    assert list(c.transport_socket_matches) == []  # plain text: nothing to wait for


def test_alpn_follows_the_port_protocol_and_sni_the_subset() -> None:
    subsets = "  subsets: [{name: v1, labels: {version: v1}}]\n"
    snap = snapshot(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: r, namespace: shop}\nspec:\n  host: reviews\n" + subsets
    )
    got = by_name(snap)
    grpc = tls_context(
        got[f"outbound|7070||{REVIEWS}"].transport_socket_matches[0].transport_socket
    )
    assert grpc["common_tls_context"]["alpn_protocols"] == ["h2"]
    tcp = tls_context(got[f"outbound|5000||{REVIEWS}"].transport_socket_matches[0].transport_socket)
    assert "alpn_protocols" not in tcp["common_tls_context"]
    v1 = tls_context(
        got[f"outbound|9080|v1|{REVIEWS}"].transport_socket_matches[0].transport_socket
    )
    assert v1["sni"] == f"outbound_.9080_.v1_.{REVIEWS}"


def test_internal_service_entries_too_external_and_per_request_ones_not() -> None:
    got = by_name(snapshot())
    vms = got["outbound|8080||vms.internal"]
    sans = tls_context(vms.transport_socket_matches[0].transport_socket)
    assert sans["common_tls_context"]["combined_validation_context"][
        "default_validation_context"
    ] == {
        "match_typed_subject_alt_names": [
            {"san_type": "URI", "matcher": {"exact": "spiffe://cluster.local/ns/default/sa/vm"}}
        ]
    }
    for name in ("outbound|443||api.example.com", "outbound|80||*.example.org"):
        assert not got[name].transport_socket_matches
        assert not got[name].HasField("transport_socket")


def test_endpoints_reached_with_mtls_carry_the_match_metadata() -> None:
    snap = snapshot()
    by_cluster = {a.cluster_name: a for a in endpoints.load_assignments(snap)}
    meta = {
        e.endpoint.address.socket_address.address
        + ":"
        + str(e.endpoint.address.socket_address.port_value): as_dict(e.metadata)
        for loc in by_cluster[f"outbound|9080||{REVIEWS}"].endpoints
        for e in loc.lb_endpoints
    }
    istio = {"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}
    assert meta == {"127.0.0.1:31000": istio, "127.0.0.1:32000": istio, "10.0.0.9:9080": {}}
    vms = [
        e for loc in by_cluster["outbound|8080||vms.internal"].endpoints for e in loc.lb_endpoints
    ]
    assert [as_dict(e.metadata) for e in vms] == [istio, {}]


def test_a_port_that_disables_mtls_is_reached_in_plain_text() -> None:
    snap = snapshot(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        "metadata: {name: v2, namespace: shop}\n"
        "spec: {selector: {matchLabels: {version: v2}}, portLevelMtls: {9080: {mode: DISABLE}}}\n"
    )
    cla = {a.cluster_name: a for a in endpoints.load_assignments(snap)}[f"outbound|9080||{REVIEWS}"]
    tls_ports = sorted(
        e.endpoint.address.socket_address.port_value
        for loc in cla.endpoints
        for e in loc.lb_endpoints
        if e.metadata.filter_metadata
    )
    assert tls_ports == [31000]
    c = by_name(snap)[f"outbound|9080||{REVIEWS}"]
    sans = tls_context(c.transport_socket_matches[0].transport_socket)["common_tls_context"][
        "combined_validation_context"
    ]["default_validation_context"]["match_typed_subject_alt_names"]
    assert [s["matcher"]["exact"] for s in sans] == [MESH_SANS[0]]


def test_destination_rule_disable_and_istio_mutual() -> None:
    c = by_name(snapshot(dr("{mode: DISABLE}")))[f"outbound|9080||{REVIEWS}"]
    assert not c.transport_socket_matches and not c.HasField("transport_socket")
    c = by_name(snapshot(dr("{mode: ISTIO_MUTUAL}")))[f"outbound|9080||{REVIEWS}"]
    assert not c.transport_socket_matches
    # Every endpoint gets mTLS, so every endpoint's identity is expected.
    assert tls_context(c.transport_socket) == mesh_context(
        ["spiffe://cluster.local/ns/shop/sa/legacy", *MESH_SANS],
        f"outbound_.9080_._.{REVIEWS}",
        ["http/1.1"],
    )
    c = by_name(
        snapshot(
            dr("{mode: ISTIO_MUTUAL, sni: r.example, subjectAltNames: [spiffe://x/ns/a/sa/b]}")
        )
    )
    ctx = tls_context(c[f"outbound|9080||{REVIEWS}"].transport_socket)
    assert ctx["sni"] == "r.example"
    assert ctx["common_tls_context"]["combined_validation_context"][
        "default_validation_context"
    ] == {
        "match_typed_subject_alt_names": [
            {"san_type": "URI", "matcher": {"exact": "spiffe://x/ns/a/sa/b"}}
        ]
    }


def test_destination_rule_simple_and_mutual_from_files() -> None:
    simple = dr("{mode: SIMPLE, caCertificates: /etc/ca.pem}", host="api.example.com")
    c = by_name(snapshot(simple))["outbound|80||api.example.com"]
    assert tls_context(c.transport_socket) == {
        "sni": "api.example.com",
        "common_tls_context": {
            "alpn_protocols": ["http/1.1"],
            "validation_context": {
                "trusted_ca": {"filename": "/etc/ca.pem"},
                "match_typed_subject_alt_names": [
                    {"san_type": "DNS", "matcher": {"exact": "api.example.com"}}
                ],
            },
        },
    }
    mutual = dr(
        "{mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, sni: edge.example.com,"
        " subjectAltNames: [api.example.com, 10.0.0.1], caCertificates: /ca.pem}",
        host="api.example.com",
    )
    c = by_name(snapshot(mutual))["outbound|443||api.example.com"]
    assert tls_context(c.transport_socket) == {
        "sni": "edge.example.com",
        "common_tls_context": {
            "tls_certificates": [
                {"certificate_chain": {"filename": "/c.pem"}, "private_key": {"filename": "/k.pem"}}
            ],
            "validation_context": {
                "trusted_ca": {"filename": "/ca.pem"},
                "match_typed_subject_alt_names": [
                    {"san_type": "DNS", "matcher": {"exact": "api.example.com"}},
                    {"san_type": "IP_ADDRESS", "matcher": {"exact": "10.0.0.1"}},
                ],
            },
        },
    }


def test_wildcard_hosts_take_the_upstream_host_name_and_skip_verify_verifies_nothing() -> None:
    c = by_name(snapshot(dr("{mode: SIMPLE, caCertificates: /ca.pem}", host="*.example.org")))[
        "outbound|80||*.example.org"
    ]
    ctx = tls_context(c.transport_socket)
    assert ctx == {
        "auto_host_sni": True,
        "auto_sni_san_validation": True,
        "common_tls_context": {
            "alpn_protocols": ["http/1.1"],
            "validation_context": {"trusted_ca": {"filename": "/ca.pem"}},
        },
    }
    skip = dr("{mode: SIMPLE, insecureSkipVerify: true}", host="api.example.com")
    ctx = tls_context(by_name(snapshot(skip))["outbound|80||api.example.com"].transport_socket)
    assert ctx == {"sni": "api.example.com", "common_tls_context": {"alpn_protocols": ["http/1.1"]}}


def test_a_subset_tls_replaces_the_top_level_one() -> None:
    subsets = (
        "  subsets:\n"
        "  - {name: v1, labels: {version: v1}, trafficPolicy: {tls: {mode: DISABLE}}}\n"
        "  - {name: v2, labels: {version: v2}}\n"
    )
    got = by_name(snapshot(dr("{mode: ISTIO_MUTUAL}", subsets=subsets)))
    assert not got[f"outbound|9080|v1|{REVIEWS}"].HasField("transport_socket")
    assert got[f"outbound|9080|v2|{REVIEWS}"].HasField("transport_socket")


def write_pem(tmp_path: Path) -> tuple[str, str]:
    from tests.e2e.harness import self_signed_cert

    cert, key = self_signed_cert(tmp_path, "api.example.com")
    return str(cert), str(key)


@pytest.mark.envoy
def test_envoy_accepts_every_transport(tmp_path: Path) -> None:
    cert, key = write_pem(tmp_path)
    snap = snapshot(
        dr(
            f"{{mode: MUTUAL, clientCertificate: {cert}, privateKey: {key},"
            f" caCertificates: {cert}}}",
            host="api.example.com",
        ),
        dr(f"{{mode: SIMPLE, caCertificates: {cert}}}", host="*.example.org"),
        dr(
            "{mode: ISTIO_MUTUAL}",
            host="vms.internal",
            subsets="  subsets: [{name: a, trafficPolicy: {tls: {mode: DISABLE}}}]\n",
        ),
    )
    config = bs.static_bootstrap(
        clusters=clusters.outbound_clusters(snap),
        load_assignments=endpoints.load_assignments(snap),
    )
    config["static_resources"]["clusters"].append(bs.sds_cluster(str(tmp_path / "sds.sock")))
    path = bs.write_bootstrap(tmp_path / "envoy.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
