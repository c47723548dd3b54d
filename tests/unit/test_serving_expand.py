"""Knative Serving's expansion into mesh resources (pure): revisions, routes, domains,
status, the image map."""

from __future__ import annotations

from typing import Any

from amimesh.resources import parse_documents
from amimesh.resources.meta import Resource
from amimesh.serving.expand import RevisionRecord, domain_of, expand

BASE = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: shop, labels: %(labels)s}
spec:
  template:
    metadata: %(meta)s
    spec:
      %(spec)s
      containers:
        - image: %(image)s
          %(command)s
          env: [{name: TARGET, value: "%(target)s"}]
          ports: [{containerPort: 9000}]
%(traffic)s"""


def ksvc(
    target: str = "one",
    *,
    labels: str = "{}",
    meta: str = "{}",
    traffic: str = "",
    image: str = "example.com/hello:1",
    command: str = "command: [python3, app.py]",
    extra: str = "",
    spec: str = "",
) -> list[Resource]:
    text = BASE % {
        "spec": spec,
        "labels": labels,
        "meta": meta,
        "traffic": traffic,
        "image": image,
        "command": command,
        "target": target,
    }
    result = parse_documents(text + extra, "t.yaml")
    assert not result.errors, result.errors
    return result.resources


DOMAIN = """---
apiVersion: v1
kind: ConfigMap
metadata: {name: config-domain, namespace: knative-serving}
data:
  example.com: ""
  internal.example.com: |
    selector:
      team: back
"""


def by_kind(derived: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in derived if d["kind"] == kind}


def test_a_revision_per_template_change_and_none_for_metadata() -> None:
    first = expand(ksvc(), [], now=1.0)
    assert [(r.name, r.generation) for r in first.history] == [("hello-00001", 1)]
    same = expand(ksvc(labels="{team: a}"), first.history, now=2.0)
    assert [r.name for r in same.history] == ["hello-00001"]
    changed = expand(ksvc("two"), first.history, now=3.0)
    assert [(r.name, r.created) for r in changed.history] == [
        ("hello-00001", 1.0),
        ("hello-00002", 3.0),
    ]
    # Records outlive the process: their JSON reads back the same.
    assert [RevisionRecord.from_json(r.to_json()) for r in changed.history] == changed.history


def test_a_revision_runs_as_a_workload_with_the_runtime_contract() -> None:
    out = expand(ksvc(), [], now=1.0)
    wl = by_kind(out.derived, "Workload")["hello-00001"]
    labels = wl["metadata"]["labels"]
    assert labels["serving.knative.dev/service"] == "hello"
    assert labels["serving.knative.dev/revision"] == "hello-00001"
    assert labels["service.istio.io/canonical-revision"] == "hello-00001"
    env = {e["name"]: e["value"] for e in wl["spec"]["env"]}
    assert env == {
        "TARGET": "one",
        "K_SERVICE": "hello",
        "K_CONFIGURATION": "hello",
        "K_REVISION": "hello-00001",
    }
    assert wl["spec"]["ports"] == [{"name": "http", "port": 9000, "protocol": "HTTP"}]
    assert wl["spec"]["replicas"] == 1
    svc = by_kind(out.derived, "Service")["hello-00001"]
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 9000}]


def test_container_concurrency_is_the_workloads_max_concurrency() -> None:
    def annotations(spec: str) -> dict[str, str]:
        out = expand(ksvc(spec=spec), [], now=1.0)
        return dict(by_kind(out.derived, "Workload")["hello-00001"]["metadata"]["annotations"])

    assert annotations("containerConcurrency: 3")["ami.dev/max-concurrency"] == "3"
    assert "ami.dev/max-concurrency" not in annotations("containerConcurrency: 0")
    assert "ami.dev/max-concurrency" not in annotations("")


def test_timeout_seconds_is_the_time_for_the_response_to_start() -> None:
    def http_route(spec: str) -> dict[str, Any]:
        out = expand(ksvc(spec=spec), [], now=1.0)
        return dict(by_kind(out.derived, "VirtualService")["hello"]["spec"]["http"][0])

    # A per-try timeout (a 504 until the response starts), not the route's timeout
    # (which would cut a started response off); the mesh's default retries.
    route = http_route("timeoutSeconds: 1")
    assert route["retries"] == {"attempts": 2, "perTryTimeout": "1s"}
    assert "timeout" not in route
    assert http_route("")["retries"]["perTryTimeout"] == "300s"
    shorter = "timeoutSeconds: 60\n      responseStartTimeoutSeconds: 5"
    assert http_route(shorter)["retries"]["perTryTimeout"] == "5s"
    longer = "timeoutSeconds: 60\n      responseStartTimeoutSeconds: 90"
    assert http_route(longer)["retries"]["perTryTimeout"] == "60s"


def test_byo_revision_names_and_a_name_taken_by_another_template() -> None:
    out = expand(ksvc(meta="{name: hello-blue}"), [], now=1.0)
    assert [r.name for r in out.history] == ["hello-blue"]
    again = expand(ksvc("two", meta="{name: hello-blue}"), out.history, now=2.0)
    assert [r.name for r in again.history] == ["hello-blue"]
    cond = again.status[("Configuration", "shop", "hello")]["conditions"][0]
    assert cond["status"] == "False" and "already exists" in cond["message"]


def test_latest_revision_traffic_follows_the_latest_ready_one() -> None:
    one = expand(ksvc(), [], ready=[("shop", "hello-00001")], now=1.0)
    two = expand(ksvc("two"), one.history, ready=[("shop", "hello-00001")], now=2.0)
    vs = by_kind(two.derived, "VirtualService")["hello"]
    (route,) = vs["spec"]["http"][0]["route"]
    assert route["destination"]["host"] == "hello-00001.shop.svc.cluster.local"
    status = two.status[("Service.serving.knative.dev", "shop", "hello")]
    assert status["latestCreatedRevisionName"] == "hello-00002"
    assert status["latestReadyRevisionName"] == "hello-00001"
    ready = expand(ksvc("two"), two.history, ready=[("shop", "hello-00002")], now=3.0)
    vs = by_kind(ready.derived, "VirtualService")["hello"]
    (route,) = vs["spec"]["http"][0]["route"]
    assert route["destination"]["host"] == "hello-00002.shop.svc.cluster.local"
    # The revision nothing routes to any more runs no instance.
    assert by_kind(ready.derived, "Workload")["hello-00001"]["spec"]["replicas"] == 0


def test_split_and_tags_and_the_domain() -> None:
    one = expand(ksvc(), [], now=1.0)
    traffic = """  traffic:
    - {revisionName: hello-00001, percent: 30, tag: old}
    - {latestRevision: true, percent: 70}
"""
    ready = [("shop", "hello-00001"), ("shop", "hello-00002")]
    out = expand(ksvc("two", traffic=traffic, extra=DOMAIN), one.history, ready=ready, now=2.0)
    vs = by_kind(out.derived, "VirtualService")
    assert vs["hello"]["spec"]["hosts"] == [
        "hello.shop.svc.cluster.local",
        "hello.shop.example.com",
    ]
    assert vs["hello"]["spec"]["gateways"] == ["mesh", "knative-serving/knative-ingress-gateway"]
    weights = {
        r["destination"]["host"]: r["weight"] for r in vs["hello"]["spec"]["http"][0]["route"]
    }
    assert weights == {
        "hello-00001.shop.svc.cluster.local": 30,
        "hello-00002.shop.svc.cluster.local": 70,
    }
    assert vs["old-hello"]["spec"]["hosts"] == [
        "old-hello.shop.svc.cluster.local",
        "old-hello.shop.example.com",
    ]
    assert "old-hello" in by_kind(out.derived, "Service")
    assert "knative-ingress-gateway" in by_kind(out.derived, "Gateway")
    status = out.status[("Service.serving.knative.dev", "shop", "hello")]
    assert [c["status"] for c in status["conditions"]] == ["True", "True", "True"]
    assert status["url"] == "http://hello.shop.example.com"
    assert status["traffic"][0]["url"] == "http://old-hello.shop.example.com"


def test_domains_by_selector_and_cluster_local() -> None:
    (cm,) = [r for r in parse_documents(DOMAIN, "d.yaml").resources]
    assert domain_of([cm], {}) == "example.com"
    assert domain_of([cm], {"team": "back"}) == "internal.example.com"
    assert domain_of([], {"team": "back"}) == "svc.cluster.local"
    local = expand(
        ksvc(labels="{networking.knative.dev/visibility: cluster-local}", extra=DOMAIN),
        [],
        now=1.0,
    )
    vs = by_kind(local.derived, "VirtualService")["hello"]
    assert vs["spec"]["gateways"] == ["mesh"]
    assert "Gateway" not in {d["kind"] for d in local.derived}
    status = local.status[("Service.serving.knative.dev", "shop", "hello")]
    assert status["url"] == "http://hello.shop.svc.cluster.local"


IMAGES = """---
apiVersion: v1
kind: ConfigMap
metadata: {name: ami-images, namespace: knative-serving}
data:
  example.com/hello: |
    command: [python3, hello.py]
    args: [--greeting, hi]
    workingDir: apps/hello
    env: {GREETING: hi, TARGET: mapped}
"""


def test_an_image_runs_through_the_image_map_or_says_what_to_add() -> None:
    mapped = expand(ksvc(command="", extra=IMAGES), [], now=1.0)
    wl = by_kind(mapped.derived, "Workload")["hello-00001"]["spec"]
    assert wl["command"] == ["python3", "hello.py"] and wl["args"] == ["--greeting", "hi"]
    assert wl["workingDir"] == "apps/hello"
    env = {e["name"]: e["value"] for e in wl["env"]}
    assert env["GREETING"] == "hi" and env["TARGET"] == "one"  # the container's wins
    bare = expand(ksvc(command=""), [], now=1.0)
    assert "Workload" not in {d["kind"] for d in bare.derived}
    cond = bare.status[("Revision", "shop", "hello-00001")]["conditions"][0]
    assert cond["status"] == "False" and cond["reason"] == "ImageNotRunnable"
    assert "knative-serving/ami-images" in cond["message"]
    service = bare.status[("Service.serving.knative.dev", "shop", "hello")]
    assert service["conditions"][0]["status"] == "False"  # ConfigurationsReady


def test_a_route_to_a_missing_revision_is_not_ready() -> None:
    traffic = "  traffic:\n    - {revisionName: hello-09999, percent: 100}\n"
    out = expand(ksvc(traffic=traffic), [], now=1.0)
    cond = out.status[("Route", "shop", "hello")]["conditions"][0]
    assert cond["status"] == "False" and "hello-09999" in cond["message"]


ZERO = """---
apiVersion: v1
kind: ConfigMap
metadata: {name: config-autoscaler, namespace: knative-serving}
data: {allow-zero-initial-scale: "true"}
"""


def test_a_revision_may_start_at_zero_when_the_mesh_allows_it() -> None:
    meta = '{annotations: {autoscaling.knative.dev/initial-scale: "0"}}'
    refused = expand(ksvc(meta=meta), [], now=1.0)
    assert by_kind(refused.derived, "Workload")["hello-00001"]["spec"]["replicas"] == 1
    zero = expand(ksvc(meta=meta, extra=ZERO), [], activator_port=4000, now=1.0)
    assert by_kind(zero.derived, "Workload")["hello-00001"]["spec"]["replicas"] == 0
    (route,) = by_kind(zero.derived, "VirtualService")["hello"]["spec"]["http"][0]["route"]
    assert route["destination"]["host"] == "activator-service.knative-serving.svc.cluster.local"
    assert route["headers"]["request"]["set"]["Knative-Serving-Revision"] == "hello-00001"
    status = zero.status[("Service.serving.knative.dev", "shop", "hello")]
    assert status["conditions"][1] == {"type": "Ready", "status": "True"}


def test_a_removed_service_runs_nothing_but_keeps_its_revisions() -> None:
    out = expand(ksvc(), [], now=1.0)
    gone = expand([], out.history, now=2.0)
    assert [r.name for r in gone.history] == ["hello-00001"]
    assert by_kind(gone.derived, "Workload")["hello-00001"]["spec"]["replicas"] == 0
    assert "VirtualService" not in {d["kind"] for d in gone.derived}


DEFAULTS = """---
apiVersion: v1
kind: ConfigMap
metadata: {name: config-defaults, namespace: knative-serving}
data: {revision-timeout-seconds: "42", container-concurrency: "3"}
"""


def test_config_defaults_fill_a_new_revision_and_change_none() -> None:
    out = expand(ksvc(extra=DEFAULTS), [], now=1.0)
    (r,) = out.history
    assert r.spec.timeoutSeconds == 42 and r.spec.containerConcurrency == 3
    wl = by_kind(out.derived, "Workload")["hello-00001"]
    assert wl["metadata"]["annotations"]["ami.dev/max-concurrency"] == "3"
    # Other defaults later: the same template makes no new revision.
    again = expand(ksvc(extra=DEFAULTS.replace('"42"', '"60"')), out.history, now=2.0)
    assert [x.name for x in again.history] == ["hello-00001"]


NETWORK = """---
apiVersion: v1
kind: ConfigMap
metadata: {name: config-network, namespace: knative-serving}
data:
  domain-template: "{{.Name}}-{{.Namespace}}.{{ index .Annotations \\"zone\\" }}.{{.Domain}}"
  tag-template: "{{.Name}}-at-{{.Tag}}"
  default-external-scheme: https
"""


def test_config_network_templates_name_hosts_tags_and_urls() -> None:
    one = expand(ksvc(), [], now=1.0)
    traffic = """  traffic:
    - {revisionName: hello-00001, percent: 30, tag: old}
    - {latestRevision: true, percent: 70}
"""
    ready = [("shop", "hello-00001"), ("shop", "hello-00002")]
    resources = ksvc("two", traffic=traffic, extra=DOMAIN + NETWORK)
    for r in resources:  # the Service's annotations feed the template
        if r.KIND == "Service" and r.name == "hello":
            r.metadata.annotations["zone"] = "eu"
    out = expand(resources, one.history, ready=ready, now=2.0)
    vs = by_kind(out.derived, "VirtualService")
    assert vs["hello"]["spec"]["hosts"] == [
        "hello.shop.svc.cluster.local",
        "hello-shop.eu.example.com",
    ]
    assert vs["hello-at-old"]["spec"]["hosts"] == [
        "hello-at-old.shop.svc.cluster.local",
        "hello-at-old-shop.eu.example.com",
    ]
    assert "hello-at-old" in by_kind(out.derived, "Service")
    status = out.status[("Service.serving.knative.dev", "shop", "hello")]
    assert status["url"] == "https://hello-shop.eu.example.com"
    assert status["traffic"][0]["url"] == "https://hello-at-old-shop.eu.example.com"
    assert status["address"]["url"] == "http://hello.shop.svc.cluster.local"


def test_a_knative_revision_restarts_on_its_liveness_probe_with_kubernetes_defaults() -> None:
    ksvc = (
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: hello, "
        "namespace: shop}\nspec:\n  template:\n    spec:\n      containers:\n"
        "      - image: example.com/hello\n        command: [x]\n"
        "        livenessProbe: {httpGet: {path: /healthz}}\n"
    )
    result = parse_documents(ksvc, "x.yaml")
    assert result.errors == []
    out = expand(result.resources, [], now=0.0)
    (w,) = [d for d in out.derived if d["kind"] == "Workload"]
    port = w["spec"]["ports"][0]["port"]
    assert w["spec"]["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": port},
        "periodSeconds": 10,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
        "initialDelaySeconds": 0,
    }
