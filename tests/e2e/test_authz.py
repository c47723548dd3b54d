"""AuthorizationPolicy on a real mesh: operations, conditions, actions and peers.

Sidecars talk mutual TLS to each other (auto mTLS), so a policy can name the caller by
its SPIFFE identity (`principals`, `namespaces`, `serviceAccounts`); a plain-text
caller has none. Each test applies its policies once, waits until the server sidecar
drained the connections opened under its previous filters, then probes.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.harness import Mesh, Sidecar

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

DENIED = "RBAC: access denied"


def service(name: str, port: int, namespace: str = "default") -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{selector: {{app: {name}}}, ports: [{{name: http, port: {port}}}]}}
---
"""


def stat(sidecar: Sidecar, name: str) -> int:
    for line in sidecar.stats().splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def settle(mesh: Mesh, *servers: Sidecar, timeout: float = 15.0) -> None:
    """Until every proxy acked the config and `servers` drained their old filter chains."""
    mesh.wait_synced()
    deadline = time.monotonic() + timeout
    for server in servers:
        while stat(server, "listener_manager.total_filter_chains_draining"):
            assert time.monotonic() < deadline, f"{server.proxy.id} is still draining"
            time.sleep(0.1)


def call(client: Sidecar, url: str, method: str = "GET", **headers: str) -> int:
    with client.http() as http:
        r = http.request(method, url, headers={k.replace("_", "-"): v for k, v in headers.items()})
    if r.status_code == 403:
        assert r.text == DENIED
    return r.status_code


OPERATIONS = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin}
spec:
  selector: {matchLabels: {app: api}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
  - when: [{key: "request.headers[x-block]", values: ["*"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-orders}
spec:
  selector: {matchLabels: {app: api}}
  action: AUDIT
  rules:
  - to: [{operation: {paths: [/orders]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-api}
spec:
  selector: {matchLabels: {app: api}}
  rules:
  - to: [{operation: {methods: [GET, HEAD], paths: ["/public/*", "*.css", /exact, /admin/x]}}]
  - to: [{operation: {methods: [POST], paths: [/orders]}}]
    when: [{key: "request.headers[x-user]", values: [jason, "adm*"]}]
  - to: [{operation: {hosts: [api.default.svc.cluster.local], paths: [/by-name]}}]
  - to: [{operation: {ports: ["9999"], paths: [/other-port]}}]
  - to: [{operation: {ports: ["8080"], notPaths: ["/public/*", "/private/*"], methods: [PUT]}}]
  - to: [{operation: {paths: [/everyone-but-jason]}}]
    when: [{key: "request.headers[x-user]", notValues: [jason]}]
"""


def test_operations_conditions_and_actions(mesh: Mesh) -> None:
    mesh.apply(service("api", 8080), "service.yaml")
    api = mesh.workload("api", {"app": "api"}, port=8080)
    client = mesh.client()
    mesh.apply(OPERATIONS, "policies.yaml")
    settle(mesh, api)
    base = "http://api:8080"

    # Methods and paths: exact, prefix, suffix; the query string does not count.
    assert call(client, f"{base}/public/books") == 200
    assert call(client, f"{base}/public/books", "HEAD") == 200
    assert call(client, f"{base}/public/books", "POST") == 403
    assert call(client, f"{base}/static/site.css") == 200
    assert call(client, f"{base}/exact?page=2") == 200
    assert call(client, f"{base}/exact/more") == 403
    assert call(client, f"{base}/unlisted") == 403

    # Header conditions, with wildcards and notValues.
    assert call(client, f"{base}/orders", "POST", x_user="jason") == 200
    assert call(client, f"{base}/orders", "POST", x_user="admin-7") == 200
    assert call(client, f"{base}/orders", "POST", x_user="bob") == 403
    assert call(client, f"{base}/orders", "POST") == 403
    assert call(client, f"{base}/everyone-but-jason", x_user="bob") == 200
    assert call(client, f"{base}/everyone-but-jason", x_user="jason") == 403

    # Hosts are the request's authority, with or without its port.
    assert call(client, "http://api.default.svc.cluster.local:8080/by-name") == 200
    assert call(client, f"{base}/by-name") == 403

    # Ports are the workload's: this one is 8080.
    assert call(client, f"{base}/other-port") == 403
    assert call(client, f"{base}/anything", "PUT") == 200
    assert call(client, f"{base}/private/x", "PUT") == 403

    # DENY comes first: an ALLOW match does not save a denied request.
    assert call(client, f"{base}/admin/x") == 403
    assert call(client, f"{base}/public/books", x_block="1") == 403

    # AUDIT only marks requests (for the access log), it never refuses one; each rule
    # counts the requests it matched.
    audited = "http.inbound_8080.rbac.audit.policy.ns[default]-policy[audit-orders]-rule[0]"
    before = stat(api, f"{audited}.allowed")
    assert call(client, f"{base}/orders", "POST", x_user="bob") == 403
    assert call(client, f"{base}/orders", "POST", x_user="jason") == 200
    assert stat(api, f"{audited}.allowed") == before + 2
    denied = "http.inbound_8080.rbac.deny.policy.ns[default]-policy[deny-admin]-rule[0].denied"
    assert stat(api, denied) == 1


PEERS = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/frontend]}}]
  - from: [{source: {namespaces: [partners]}}]
    to: [{operation: {paths: ["/partners/*"]}}]
  - from: [{source: {serviceAccounts: [default/batch]}}]
    to: [{operation: {methods: [POST]}}]
  - to: [{operation: {paths: [/by-when]}}]
    when: [{key: source.principal, values: ["*/sa/auditor"]}]
  - from: [{source: {notPrincipals: ["*"], ipBlocks: [127.0.0.1/32]}}]
    to: [{operation: {paths: [/plain]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-interns}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - when: [{key: source.namespace, values: ["intern*"]}]
"""


def test_peers_are_named_by_their_mutual_tls_identity(mesh: Mesh) -> None:
    mesh.apply(service("reviews", 9080), "service.yaml")
    reviews = mesh.workload("reviews", {"app": "reviews"}, port=9080, service_account="reviews")

    def caller(name: str, namespace: str = "default") -> Sidecar:
        return mesh.workload(
            name, {"app": name}, namespace=namespace, service_account=name, outbound=True
        )

    frontend, batch, auditor, other = (caller(n) for n in ("frontend", "batch", "auditor", "other"))
    partner = caller("partner", "partners")
    intern = caller("frontend", "interns")
    mesh.apply(PEERS, "policies.yaml")
    settle(mesh, reviews)
    url = "http://reviews.default:9080"

    assert call(frontend, f"{url}/reviews/1") == 200
    assert call(other, f"{url}/reviews/1") == 403
    assert call(partner, f"{url}/partners/feed") == 200
    assert call(partner, f"{url}/reviews/1") == 403
    assert call(batch, f"{url}/jobs", "POST") == 200
    assert call(batch, f"{url}/jobs") == 403
    assert call(auditor, f"{url}/by-when") == 200
    assert call(other, f"{url}/by-when") == 403
    # Same service account name, another namespace: not the frontend, and denied anyway.
    assert call(intern, f"{url}/reviews/1") == 403

    # A caller without a sidecar talks plain text (PERMISSIVE lets it in): it has no
    # identity, so only a rule that asks for none admits it.
    plain = f"http://127.0.0.1:{reviews.proxy.inbound[0].listen_port}"
    with httpx.Client(trust_env=False, timeout=10) as http:
        assert http.get(f"{plain}/reviews/1").status_code == 403
        assert http.get(f"{plain}/plain").status_code == 200
    assert call(frontend, f"{url}/plain") == 200  # the first rule admits the frontend


def test_deny_all_then_namespace_and_mesh_policies(mesh: Mesh) -> None:
    mesh.apply(service("a", 8080) + service("b", 8080, "other"), "services.yaml")
    a = mesh.workload("a", {"app": "a"}, port=8080)
    b = mesh.workload("b", {"app": "b"}, port=8080, namespace="other")
    client = mesh.client()
    mesh.wait_synced()
    assert call(client, "http://a:8080/") == 200
    assert call(client, "http://b.other:8080/") == 200

    # `spec: {}` in a namespace: every workload there refuses everything.
    mesh.apply(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: deny-all, namespace: default}\nspec: {}\n",
        "deny-all.yaml",
    )
    settle(mesh, a, b)
    assert call(client, "http://a:8080/") == 403
    assert call(client, "http://b.other:8080/") == 200

    # A DENY policy in the root namespace applies to the whole mesh.
    mesh.apply(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: no-delete, namespace: istio-system}\n"
        "spec: {action: DENY, rules: [{to: [{operation: {methods: [DELETE]}}]}]}\n",
        "mesh.yaml",
    )
    mesh.remove("deny-all.yaml")
    settle(mesh, a, b)
    assert call(client, "http://a:8080/") == 200
    assert call(client, "http://a:8080/", "DELETE") == 403
    assert call(client, "http://b.other:8080/x", "DELETE") == 403
    assert call(client, "http://b.other:8080/x", "PUT") == 200
