"""Mutual TLS end to end: real Envoys with certificates from the mesh's CA by SDS.

Sidecars reach each other with mutual TLS on their own (auto mTLS); a workload's inbound
port accepts what its PeerAuthentication says (STRICT, PERMISSIVE, DISABLE); a client
sidecar refuses a server whose SPIFFE ID is not one of the service's accounts; a
DestinationRule's `tls` overrides the choice.
"""

from __future__ import annotations

import httpx
import pytest

from amimesh.agent import sds as sds_mod
from amimesh.identity import csr as csr_mod
from amimesh.identity.issued import Issued
from amimesh.identity.spiffe import SpiffeId
from tests.e2e.harness import Mesh, Sidecar, wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
"""
PEER_AUTH = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {namespace}}}
spec: {spec}
"""
URL = "http://reviews:9080/"
REVIEWS_ID = "spiffe://cluster.local/ns/default/sa/reviews"
CLIENT_ID = "spiffe://cluster.local/ns/default/sa/default"


def peer_auth(spec: str, name: str = "default", namespace: str = "default") -> str:
    return PEER_AUTH.format(name=name, namespace=namespace, spec=spec)


def plain_get(sidecar: Sidecar) -> int:
    """A plain-text request straight to the sidecar's inbound port, as a client without
    a sidecar would send it; 0 when the connection is refused or closed."""
    port = sidecar.proxy.inbound[0].listen_port
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=5, trust_env=False).status_code
    except httpx.TransportError:
        return 0


def wait_serving(sidecar: Sidecar, issued: Issued) -> None:
    """Until the sidecar's Envoy uses the certificate `issued`."""
    serial = issued.serial.lower().lstrip("0")
    wait_for(lambda: serial in sidecar.served_serials())


def stat(sidecar: Sidecar, name: str) -> int:
    for line in sidecar.stats().splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def cluster_stat(client: Sidecar, name: str) -> int:
    return stat(client, f"cluster.outbound|9080||reviews.default.svc.cluster.local.{name}")


@pytest.fixture
def reviews(mesh: Mesh) -> tuple[Sidecar, Sidecar]:
    mesh.apply(SERVICE, "service.yaml")
    server = mesh.workload("reviews-v1", {"app": "reviews"}, port=9080, service_account="reviews")
    client = mesh.client()
    mesh.wait_synced()
    return server, client


def test_sidecars_use_mutual_tls_and_the_app_sees_the_caller(
    mesh: Mesh, reviews: tuple[Sidecar, Sidecar]
) -> None:
    server, client = reviews
    with client.http() as http:
        r = http.get(URL, headers={"x-forwarded-client-cert": "By=spiffe://forged"})
    assert r.status_code == 200, r.text
    assert cluster_stat(client, "ssl.handshake") >= 1
    # The caller's own XFCC is replaced by what the sidecar verified.
    xfcc = r.json()["headers"]["x-forwarded-client-cert"]
    assert f"URI={CLIENT_ID}" in xfcc and f"By={REVIEWS_ID}" in xfcc
    assert "forged" not in xfcc
    # PERMISSIVE (the default): plain text is accepted as well, without an identity.
    assert plain_get(server) == 200
    assert server.backend is not None
    assert "x-forwarded-client-cert" not in server.backend.requests[-1].headers


def test_strict_refuses_plain_text_and_permissive_takes_both(
    mesh: Mesh, reviews: tuple[Sidecar, Sidecar]
) -> None:
    server, client = reviews
    mesh.apply(peer_auth("{mtls: {mode: STRICT}}", namespace="istio-system"), "pa.yaml")
    mesh.wait_synced()
    assert plain_get(server) == 0
    with client.http() as http:
        assert http.get(URL).status_code == 200
    # A workload policy relaxes one port again.
    mesh.apply(
        peer_auth(
            "{selector: {matchLabels: {app: reviews}}, portLevelMtls: {9080: {mode: PERMISSIVE}}}",
            name="reviews",
        ),
        "reviews-pa.yaml",
    )
    mesh.wait_synced()
    assert plain_get(server) == 200
    with client.http() as http:
        assert http.get(URL).status_code == 200


def test_gateway_reaches_strict_workloads_with_mutual_tls(
    mesh: Mesh, reviews: tuple[Sidecar, Sidecar]
) -> None:
    mesh.apply(
        peer_auth("{mtls: {mode: STRICT}}")
        + """
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: ["*"]
  gateways: [ingress]
  http: [{route: [{destination: {host: reviews}}]}]
""",
        "edge.yaml",
    )
    gw = mesh.gateway()
    mesh.wait_synced()
    r = httpx.get(gw.url(8080) + "/", timeout=10, trust_env=False)
    assert r.status_code == 200, r.text
    gateway_id = "spiffe://cluster.local/ns/default/sa/istio-ingressgateway-service-account"
    assert f"URI={gateway_id}" in r.json()["headers"]["x-forwarded-client-cert"]


def test_disable_means_plain_text_both_ways(mesh: Mesh, reviews: tuple[Sidecar, Sidecar]) -> None:
    server, client = reviews
    mesh.apply(peer_auth("{mtls: {mode: DISABLE}}"), "pa.yaml")
    mesh.wait_synced()
    handshakes = cluster_stat(client, "ssl.handshake")
    with client.http() as http:
        r = http.get(URL)
    # The client saw that the endpoint takes plain text only, and sent plain text.
    assert r.status_code == 200, r.text
    assert cluster_stat(client, "ssl.handshake") == handshakes
    assert plain_get(server) == 200


def test_destination_rule_tls_overrides_auto_mtls(
    mesh: Mesh, reviews: tuple[Sidecar, Sidecar]
) -> None:
    _, client = reviews
    rule = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec: {{host: reviews, trafficPolicy: {{tls: {{mode: {mode}}}}}}}
"""
    mesh.apply(peer_auth("{mtls: {mode: STRICT}}"), "pa.yaml")
    mesh.apply(rule.format(mode="DISABLE"), "dr.yaml")
    mesh.wait_synced()
    with client.http() as http:
        assert http.get(URL).status_code == 503
    mesh.apply(rule.format(mode="ISTIO_MUTUAL"), "dr.yaml")
    mesh.wait_synced()
    with client.http() as http:
        assert http.get(URL).status_code == 200
    # ISTIO_MUTUAL toward a port that takes plain text only fails: the rule is obeyed.
    # (Connections open before the change are drained, not cut: new ones fail.)
    mesh.apply(peer_auth("{mtls: {mode: DISABLE}}"), "pa.yaml")
    mesh.wait_synced()
    with client.http() as http:
        wait_for(lambda: http.get(URL).status_code == 503, timeout=15)


def test_a_server_with_another_identity_is_refused(
    mesh: Mesh, reviews: tuple[Sidecar, Sidecar]
) -> None:
    server, client = reviews
    # The server's sidecar now holds a valid certificate of the mesh's CA, but for
    # another service account than the service's endpoints run as.
    impostor = SpiffeId("cluster.local", "default", "ratings")
    issued, key = mesh.issue(impostor)
    server.set_secrets(
        sds_mod.Secrets(issued.certificate_chain, csr_mod.key_pem(key), issued.trust_bundle)
    )
    wait_serving(server, issued)
    failures = cluster_stat(client, "ssl.fail_verify_san")
    with client.http() as http:
        r = http.get(URL)
    assert r.status_code == 503
    assert cluster_stat(client, "ssl.fail_verify_san") > failures
    assert server.backend is not None and not server.backend.requests
    # Its own identity back: accepted again.
    wait_serving(server, server.rotate())
    with client.http() as http:
        r = http.get(URL)
    assert r.status_code == 200, r.text
