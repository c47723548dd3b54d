"""The control plane's HTTP API through aiohttp's test client (and once on a real port)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils

from amimesh.controlplane import nodes
from amimesh.controlplane.api import make_app
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Instance
from amimesh.resources import parse_documents
from amimesh.translate.built import CLUSTER
from amimesh.xds.client import AdsClient

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

REVIEWS = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
"""

BROKEN = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken}
spec:
  hosts: [ratings]
  http:
    - route:
        - destination: {host: ratings}
          weight: -5
"""


@pytest.fixture
async def cp() -> ControlPlane:
    return ControlPlane(ControlPlaneConfig(debounce_s=0.01))


@pytest.fixture
async def client(cp: ControlPlane) -> AsyncIterator[test_utils.TestClient[Any, Any]]:
    c = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()


Client = test_utils.TestClient[Any, Any]


async def call(
    client: Client, method: str, path: str, *, status: int = 200, **kwargs: Any
) -> dict[str, Any]:
    async with client.request(method, path, headers=AUTH, **kwargs) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == status, body
        assert resp.content_type == "application/json"
        return body


# --- auth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
)
async def test_every_request_needs_the_token(client: Client, headers: Mapping[str, str]) -> None:
    for method, path in [("GET", "/api/v1/status"), ("POST", "/api/v1/apply"), ("GET", "/nope")]:
        async with client.request(method, path, headers=headers, data="x") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"] == "Bearer"
            assert "unauthorized" in (await resp.json())["error"]


async def test_errors_are_json(client: Client) -> None:
    assert await call(client, "GET", "/api/v1/nope", status=404) == {"error": "Not Found"}
    body = await call(client, "GET", "/api/v1/apply", status=405)
    assert body == {"error": "Method Not Allowed"}


def test_a_token_is_required() -> None:
    with pytest.raises(ValueError, match="api_token is required"):
        ControlPlaneConfig(api_port=0)
    with pytest.raises(ValueError, match="token"):
        make_app(ControlPlane(ControlPlaneConfig()), "")


# --- apply, get, delete ----------------------------------------------------------------


async def test_apply_then_get(client: Client, cp: ControlPlane) -> None:
    body = await call(client, "POST", "/api/v1/apply?source=shop/reviews.yaml", data=REVIEWS)
    assert body["applied"] == ["Service/default/reviews", "VirtualService/default/reviews"]
    assert [r["action"] for r in body["results"]] == ["created", "created"]
    assert cp.store.get(("Service", "default", "reviews")) is not None

    again = await call(client, "POST", "/api/v1/apply", data=REVIEWS)
    assert [r["action"] for r in again["results"]] == ["unchanged", "unchanged"]
    changed = await call(client, "POST", "/api/v1/apply", data=REVIEWS.replace("9080", "9081"))
    assert [r["action"] for r in changed["results"]] == ["configured", "unchanged"]

    for kind in ("vs", "VirtualService", "virtualservices", "virtualservice.networking.istio.io"):
        got = await call(client, "GET", "/api/v1/resources", params={"kind": kind})
        assert got["kind"] == "VirtualService"
        assert got["items"] == [
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "reviews", "namespace": "default"},
                "spec": {
                    "hosts": ["reviews"],
                    "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}],
                },
                "source": "api",
            }
        ]
    svc = await call(client, "GET", "/api/v1/resources?kind=svc&name=reviews&namespace=default")
    assert svc["items"][0]["spec"]["ports"] == [{"name": "http", "port": 9081}]
    none = await call(client, "GET", "/api/v1/resources?kind=svc&namespace=other")
    assert none["items"] == []
    everything = await call(client, "GET", "/api/v1/resources")
    assert [i["kind"] for i in everything["items"]] == ["Service", "VirtualService"]


async def test_bad_yaml_is_400_with_precise_errors_and_applies_nothing(
    client: Client, cp: ControlPlane
) -> None:
    body = await call(client, "POST", "/api/v1/apply?source=bad.yaml", data=BROKEN, status=400)
    assert body == {
        "errors": [
            "bad.yaml: document 1 (line 8): VirtualService/default/broken: "
            "spec.http[0].route[0].weight: must be at least 0, got -5"
        ]
    }
    assert cp.store.resources() == []  # the valid DestinationRule was not applied either

    syntax = await call(client, "POST", "/api/v1/apply?source=s.yaml", data="a: [b", status=400)
    assert len(syntax["errors"]) == 1 and syntax["errors"][0].startswith("s.yaml: ")

    empty = await call(client, "POST", "/api/v1/apply?source=e.yaml", data="", status=400)
    assert empty == {"errors": ["e.yaml: no resources to apply"]}


async def test_unknown_kind(client: Client) -> None:
    body = await call(client, "GET", "/api/v1/resources?kind=frobs", status=400)
    (error,) = body["errors"]
    assert error.startswith(
        'unknown kind "frobs"; known kinds: ApiServerSource, Application, AuthorizationPolicy, '
        "Broker, Channel, ClusterTriggerBinding, ConfigMap, "
    )
    await call(client, "DELETE", "/api/v1/resources/frobs/default/x", status=400)


async def test_delete_by_documents_and_by_name(client: Client, cp: ControlPlane) -> None:
    await call(client, "POST", "/api/v1/apply", data=REVIEWS)
    body = await call(client, "POST", "/api/v1/delete?source=r.yaml", data=REVIEWS)
    assert body == {
        "deleted": ["Service/default/reviews", "VirtualService/default/reviews"],
        "notes": [],
        "errors": [],
    }
    assert cp.store.resources() == []
    again = await call(client, "POST", "/api/v1/delete", data=REVIEWS, status=404)
    assert again["errors"] == [
        "Service/default/reviews not found",
        "VirtualService/default/reviews not found",
    ]
    await call(client, "POST", "/api/v1/delete", data=BROKEN, status=400)

    await call(client, "POST", "/api/v1/apply", data=REVIEWS)
    one = await call(client, "DELETE", "/api/v1/resources/vs/default/reviews")
    assert one["deleted"] == ["VirtualService/default/reviews"]
    await call(client, "DELETE", "/api/v1/resources/vs/default/reviews", status=404)


KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: reviews}
spec:
  template:
    spec:
      containers: [{image: ghcr.io/knative/helloworld-go:latest}]
"""


async def test_a_knative_service_is_apart_from_the_core_service_of_its_name(
    client: Client, cp: ControlPlane
) -> None:
    body = await call(client, "POST", "/api/v1/apply", data=REVIEWS + "---" + KSVC)
    assert body["applied"] == [
        "Service/default/reviews",
        "VirtualService/default/reviews",
        "Service.serving.knative.dev/default/reviews",
    ]
    for name in ("ksvc", "kservice", "services.serving.knative.dev"):
        got = await call(client, "GET", "/api/v1/resources", params={"kind": name})
        assert [i["apiVersion"] for i in got["items"]] == ["serving.knative.dev/v1"], name
    core = await call(client, "GET", "/api/v1/resources?kind=svc")
    assert [i["apiVersion"] for i in core["items"]] == ["v1"]
    one = await call(client, "DELETE", "/api/v1/resources/ksvc/default/reviews")
    assert one["deleted"] == ["Service.serving.knative.dev/default/reviews"]
    assert cp.store.get(("Service", "default", "reviews")) is not None
    other = await call(client, "DELETE", "/api/v1/resources/svc/default/reviews")
    assert other["deleted"] == ["Service/default/reviews"]


def ksvc(image: str, traffic: str = "") -> str:
    return f"""
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: hello}}
spec:
  template:
    spec:
      containers: [{{image: {image}, command: [python3, app.py]}}]
{traffic}"""


async def names(client: Client, kind: str) -> list[str]:
    got = await call(client, "GET", "/api/v1/resources", params={"kind": kind})
    return [i["metadata"]["name"] for i in got["items"]]


async def test_knative_revisions_and_a_service_s_route_are_listed(
    client: Client, cp: ControlPlane
) -> None:
    await call(client, "POST", "/api/v1/apply", data=ksvc("example.com/hello"))
    cp.serving.reconcile()  # as the controller does on every change
    (rev,) = (await call(client, "GET", "/api/v1/resources?kind=rev"))["items"]
    assert rev["source"] == "serving"
    assert rev["metadata"]["labels"] == {
        "serving.knative.dev/configuration": "hello",
        "serving.knative.dev/configurationGeneration": "1",
        "serving.knative.dev/routingState": "active",
        "serving.knative.dev/service": "hello",
    }
    assert rev["spec"]["containers"][0]["image"] == "example.com/hello"
    assert rev["status"]["conditions"][0]["type"] == "Ready"
    (route,) = (await call(client, "GET", "/api/v1/resources?kind=rt"))["items"]
    assert route["spec"]["traffic"] == [
        {"configurationName": "hello", "latestRevision": True, "percent": 100}
    ]
    assert route["status"]["url"] == "http://hello.default.svc.cluster.local"
    assert await names(client, "config") == ["hello"]
    (svc,) = (await call(client, "GET", "/api/v1/resources?kind=ksvc"))["items"]
    assert svc["metadata"]["creationTimestamp"] == rev["metadata"]["creationTimestamp"]
    everything = await call(client, "GET", "/api/v1/resources?namespace=default")
    kinds = {i["kind"] for i in everything["items"] if i["source"] == "serving"}
    assert {"Revision", "Route", "Configuration", "Workload"} <= kinds
    assert await names(client, "rev") == ["hello-00001"]
    none = await call(client, "GET", "/api/v1/resources?kind=rev&namespace=other")
    assert none["items"] == []


async def test_serving_revisions_and_their_autoscaler_metrics(
    client: Client, cp: ControlPlane
) -> None:
    assert await call(client, "GET", "/api/v1/serving/revisions") == {"revisions": []}
    await call(client, "POST", "/api/v1/apply", data=ksvc("example.com/hello"))
    cp.serving.reconcile()
    labels = {"serving.knative.dev/revision": "hello-00001"}
    cp.store.register_instance(Instance(id="hello-00001-0.default", workload="w", labels=labels))
    body = await call(client, "GET", "/api/v1/serving/revisions")
    # Nothing decided yet (the autoscaler ticks every second): the instances only.
    assert body == {
        "revisions": [
            {
                "namespace": "default",
                "revision": "hello-00001",
                "configuration": "hello",
                "service": "hello",
                "ready": 1,
                "activator": False,
                "metric": "concurrency",
                "target": None,
                "desired": None,
                "requested": None,
                "observed_stable": None,
                "observed_panic": None,
                "panic": False,
                "excess_burst_capacity": None,
                "active": None,
            }
        ]
    }
    async with client.get("/metrics", headers=AUTH) as resp:
        assert resp.status == 200
        text = await resp.text()
    assert (
        'autoscaler_actual_pods{configuration_name="hello",namespace_name="default",'
        'revision_name="hello-00001",service_name="hello"} 1.0'
    ) in text.splitlines()


async def test_a_revision_is_deleted_only_when_nothing_needs_it(
    client: Client, cp: ControlPlane
) -> None:
    await call(client, "POST", "/api/v1/apply", data=ksvc("example.com/hello"))
    cp.serving.reconcile()
    pinned = "  traffic: [{revisionName: hello-00001, percent: 100}]"
    await call(client, "POST", "/api/v1/apply", data=ksvc("example.com/hello:2", pinned))
    cp.serving.reconcile()
    assert await names(client, "rev") == ["hello-00001", "hello-00002"]
    body = await call(client, "DELETE", "/api/v1/resources/rev/default/hello-00001", status=409)
    assert body["errors"] == [
        "revision default/hello-00001 is referenced by the traffic of route hello: move its "
        "traffic and tags elsewhere first"
    ]
    body = await call(client, "DELETE", "/api/v1/resources/rev/default/hello-00002", status=409)
    assert "is the latest of configuration hello" in body["errors"][0]
    await call(client, "POST", "/api/v1/apply", data=ksvc("example.com/hello:2"))
    cp.serving.reconcile()
    body = await call(client, "DELETE", "/api/v1/resources/rev/default/hello-00001")
    assert body["deleted"] == ["Revision/default/hello-00001"]
    assert await names(client, "rev") == ["hello-00002"]
    await call(client, "DELETE", "/api/v1/resources/rev/default/hello-00001", status=404)
    # Deleting the Service deletes its revisions, as Kubernetes' garbage collector would.
    body = await call(client, "DELETE", "/api/v1/resources/ksvc/default/hello")
    assert body["notes"] == [
        "Service.serving.knative.dev/default/hello: its revisions deleted with it: hello-00002"
    ]
    assert await names(client, "rev") == [] and await names(client, "rt") == []
    assert cp.serving.revisions() == []


async def test_a_service_from_a_file_keeps_its_revisions(client: Client, cp: ControlPlane) -> None:
    cp.store.set_source("k.yaml", parse_documents(ksvc("example.com/hello"), "k.yaml"))
    cp.serving.reconcile()
    await call(client, "POST", "/api/v1/apply", data=ksvc("example.com/hello:2"))
    cp.serving.reconcile()
    body = await call(client, "DELETE", "/api/v1/resources/ksvc/default/hello")
    assert body["notes"] == [
        "Service.serving.knative.dev/default/hello: the version in k.yaml is in force again"
    ]
    assert await names(client, "rev") == ["hello-00001", "hello-00002"]


async def test_resources_from_files_cannot_be_deleted(client: Client, cp: ControlPlane) -> None:
    cp.store.set_source("shop/reviews.yaml", parse_documents(REVIEWS, "shop/reviews.yaml"))
    body = await call(client, "DELETE", "/api/v1/resources/svc/default/reviews", status=409)
    assert body["errors"] == [
        "Service/default/reviews is defined in shop/reviews.yaml: it cannot be deleted "
        "through the API; edit or remove that file"
    ]
    # An applied resource overrides the file's; deleting it brings the file's back.
    await call(client, "POST", "/api/v1/apply", data=REVIEWS.replace("9080", "9999"))
    got = await call(client, "GET", "/api/v1/resources?kind=service")
    assert got["items"][0]["source"] == "api"
    body = await call(client, "DELETE", "/api/v1/resources/Service/default/reviews")
    assert body["notes"] == [
        "Service/default/reviews: the version in shop/reviews.yaml is in force again"
    ]
    got = await call(client, "GET", "/api/v1/resources?kind=service")
    assert got["items"][0]["source"] == "shop/reviews.yaml"


# --- status, instances, analyze ----------------------------------------------------------


async def test_status_counts_resources_and_lists_config_errors(
    client: Client, cp: ControlPlane
) -> None:
    cp.store.set_source("shop/reviews.yaml", parse_documents(REVIEWS, "shop/reviews.yaml"))
    cp.store.set_source("shop/bad.yaml", parse_documents(BROKEN, "shop/bad.yaml"))
    body = await call(client, "GET", "/api/v1/status")
    # Whether the push of this change already ran depends on timing: only its type here.
    assert isinstance(body.pop("synced"), bool)
    assert body == {
        "resources": 2,
        "config_errors": [
            "shop/bad.yaml: document 1 (line 8): VirtualService/default/broken: "
            "spec.http[0].route[0].weight: must be at least 0, got -5"
        ],
        "proxies": [],
        "instances": [],
    }


async def test_instances_register_and_deregister(client: Client, cp: ControlPlane) -> None:
    cp.store.set_source("r.yaml", parse_documents(REVIEWS, "r.yaml"))
    put = {
        "workload": "reviews-v1",
        "labels": {"app": "reviews", "version": "v1"},
        "ports": {"9080": 15123},
        "port_names": {"http": 9080},
    }
    body = await call(client, "PUT", "/api/v1/instances/reviews-v1-0", json=put)
    assert body["instance"]["ports"] == {"9080": 15123}
    (instance,) = cp.store.instances()
    assert (instance.id, instance.ports, instance.ready) == ("reviews-v1-0", {9080: 15123}, True)
    host = ("reviews.default.svc.cluster.local", 9080)
    assert [e.port for e in cp.snapshot.endpoints[host]] == [15123]

    status = await call(client, "GET", "/api/v1/status")
    assert status["instances"] == [
        {
            "instance": "reviews-v1-0",
            "workload": "reviews-v1",
            "namespace": "default",
            "pid": None,
            "state": "ready",
            "ready": True,
            "restarts": 0,
            "since": None,
            "labels": {"app": "reviews", "version": "v1"},
            "address": "127.0.0.1",
            "ports": {"9080": 15123},
        }
    ]

    await call(client, "DELETE", "/api/v1/instances/reviews-v1-0")
    assert cp.store.instances() == []
    await call(client, "DELETE", "/api/v1/instances/reviews-v1-0", status=404)


async def test_bad_instance_bodies(client: Client) -> None:
    body = await call(
        client,
        "PUT",
        "/api/v1/instances/x",
        json={"ports": {"http": 70000}, "colour": "red"},
        status=400,
    )
    assert body["errors"] == [
        "workload: Field required",
        "ports.http.[key]: Input should be a valid integer, unable to parse string as an integer",
        "ports.http: Input should be less than or equal to 65535",
        "colour: Extra inputs are not permitted",
    ]
    body = await call(client, "PUT", "/api/v1/instances/x", data="{", status=400)
    assert body["errors"][0].startswith("body: not JSON: ")


NODE_ROW = {
    "workload": "reviews-v1",
    "namespace": "default",
    "instance": "reviews-v1-0",
    "id": "reviews-v1-0.default",
    "pid": 4242,
    "state": "backoff",
    "ready": False,
    "restarts": 3,
    "since": 1700000000.0,
    "reason": "connection refused on 127.0.0.1:41004",
}
NODE_INSTANCE = {
    "id": "reviews-v1-0.default",
    "workload": "reviews-v1",
    "labels": {"app": "reviews", "version": "v1"},
    "ports": {"9080": 41003},
}


async def test_a_node_report_registers_its_instances_and_gives_the_status(
    client: Client, cp: ControlPlane
) -> None:
    body = {"instances": [NODE_INSTANCE], "status": [NODE_ROW], "gateway_urls": []}
    assert (await call(client, "PUT", "/api/v1/nodes/local", json=body))["instances"] == 1
    assert (await call(client, "GET", "/api/v1/status"))["instances"] == [NODE_ROW]
    (instance,) = cp.store.instances()
    assert instance.id == "reviews-v1-0.default" and instance.ports == {9080: 41003}
    # The next report replaces the whole view: the instance is gone.
    await call(client, "PUT", "/api/v1/nodes/local", json={"instances": [], "status": []})
    assert cp.store.instances() == []
    bad = {"instances": [{"id": "x", "workload": ""}], "status": "no"}
    errors = (await call(client, "PUT", "/api/v1/nodes/local", json=bad, status=400))["errors"]
    assert any(e.startswith("status:") for e in errors)
    assert any(e.startswith("instances[0].workload") for e in errors)


async def test_node_config_waits_for_a_change(client: Client, cp: ControlPlane) -> None:
    first = await call(client, "GET", "/api/v1/node/config")
    assert first["resources"] == []
    since = first["version"]
    waiting = asyncio.create_task(call(client, "GET", f"/api/v1/node/config?since={since}&wait=30"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    cp.store.apply(parse_documents(REVIEWS, "t.yaml"))
    changed = await asyncio.wait_for(waiting, 10)
    assert changed["version"] != since
    # What the node runs from; routing (the VirtualService) reaches proxies by xDS only.
    assert {r["kind"] for r in changed["resources"]} == {"Service"}
    # An instance coming or going is no config change: the wait runs out unchanged.
    quiet = await call(client, "GET", f"/api/v1/node/config?since={changed['version']}&wait=0.1")
    assert quiet["version"] == changed["version"]


async def test_applied_resources_and_node_reports_outlive_the_control_plane(
    tmp_path: Path,
) -> None:
    def config() -> ControlPlaneConfig:
        return ControlPlaneConfig(debounce_s=0.01, state_dir=tmp_path)

    first = ControlPlane(config())
    await first.start()
    try:
        first.store.apply(parse_documents(REVIEWS, "t.yaml"))
        body = {"instances": [NODE_INSTANCE], "status": [NODE_ROW]}
        first.nodes.report("local", nodes.parse_report(body))
        await asyncio.sleep(0.1)  # the applied resources are written from the loop
    finally:
        await first.stop()
    second = ControlPlane(config())
    await second.start()
    try:
        kinds = sorted(r.kind for r in second.store.resources())
        assert kinds == ["Service", "VirtualService"]
        assert [i.id for i in second.store.instances()] == ["reviews-v1-0.default"]
        assert second.nodes.status_rows() == [NODE_ROW]
        # Applied resources deleted are deleted for good.
        second.store.delete([r.key for r in second.store.resources()])
        await asyncio.sleep(0.1)
    finally:
        await second.stop()
    third = ControlPlane(config())
    await third.start()
    try:
        assert third.store.resources() == []
    finally:
        await third.stop()


async def test_analyze_gives_findings_with_their_source(client: Client, cp: ControlPlane) -> None:
    cp.store.set_source("shop/reviews.yaml", parse_documents(REVIEWS, "shop/reviews.yaml"))
    body = await call(client, "GET", "/api/v1/analyze")
    assert [(f["code"], f["resource"], f["source"]) for f in body["findings"]] == [
        ("AMI0301", "Service/default/reviews", "shop/reviews.yaml"),
        ("AMI0102", "VirtualService/default/reviews", "shop/reviews.yaml"),
    ]
    assert body["findings"][1]["field"] == "spec.http[0].route[0].destination.subset"


# --- a real port, a connected proxy ------------------------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[ControlPlane]:
    cp = ControlPlane(ControlPlaneConfig(debounce_s=0.01, api_port=0, api_token=TOKEN))
    await cp.start()
    try:
        yield cp
    finally:
        await cp.stop()
    assert cp.api_port == 0


async def test_proxies_show_sync_state_admin_port_and_nacks(served: ControlPlane) -> None:
    cp = served
    assert cp.api_port > 0
    cp.store.apply(parse_documents(REVIEWS, "r.yaml"))
    proxy = Proxy(id="client.default", workload="client", outbound_port=15001, admin_port=15000)

    def reject(type_url: str, resources: Mapping[str, Any]) -> str | None:
        bad = type_url == CLUSTER and any("ratings" in name for name in resources)
        return "cluster ratings: bad config" if bad else None

    ads = AdsClient(f"127.0.0.1:{cp.xds_port}", proxy.id, metadata=proxy.metadata(), reject=reject)
    await ads.start()
    base = f"http://127.0.0.1:{cp.api_port}/api/v1"
    try:
        async with aiohttp.ClientSession(headers=AUTH) as http:
            async with asyncio.timeout(5):
                await cp.xds.wait_synced(proxies=1)
            async with http.get(f"{base}/proxies") as resp:
                (p,) = (await resp.json())["proxies"]
            assert (p["id"], p["workload"], p["admin_port"], p["mode"]) == (
                "client.default",
                "client",
                15000,
                "sotw",
            )
            assert p["synced"] is True
            assert {t: v["state"] for t, v in p["types"].items()} == {
                "CDS": "SYNCED",
                "EDS": "SYNCED",
                "LDS": "SYNCED",
                "RDS": "SYNCED",
            }

            ratings = REVIEWS.replace("reviews", "ratings")
            async with http.post(f"{base}/apply", data=ratings) as resp:
                assert resp.status == 200
            async with asyncio.timeout(5):
                await cp.xds.wait_synced(proxies=1, accept_nacks=True)
            async with http.get(f"{base}/status") as resp:
                (p,) = (await resp.json())["proxies"]
            cds = p["types"]["CDS"]
            assert (p["synced"], cds["state"], cds["rejected"]) == (False, "NACK", True)
            assert cds["last_nack"]["message"] == "cluster ratings: bad config"
            assert cds["acked_version"] != cds["sent_version"]
    finally:
        await ads.stop()


def test_kind_names() -> None:
    from amimesh.controlplane import api_kinds

    assert [api_kinds.plural(k) for k in ("WorkloadEntry", "Gateway", "Ingress", "Policy")] == [
        "workloadentries",
        "gateways",
        "ingresses",
        "policies",
    ]
    for name, kind in [
        ("vs", "VirtualService"),
        ("DR", "DestinationRule"),
        ("se", "ServiceEntry"),
        ("we", "WorkloadEntry"),
        ("workloadentries", "WorkloadEntry"),
        ("svc", "Service"),
        ("Services", "Service"),
        ("workloads", "Workload"),
        ("wl", "Workload"),
        ("destinationrule.networking.istio.io", "DestinationRule"),
    ]:
        assert api_kinds.resolve(name)[1] == kind, name
    knative = "serving.knative.dev"
    for name, group_kind in [
        ("service", ("", "Service")),
        ("svc", ("", "Service")),
        ("ksvc", (knative, "Service")),
        ("kservice", (knative, "Service")),
        ("service.serving.knative.dev", (knative, "Service")),
        ("config", (knative, "Configuration")),
        ("cfg", (knative, "Configuration")),
        ("configurations", (knative, "Configuration")),
        ("rev", (knative, "Revision")),
        ("revisions", (knative, "Revision")),
        ("rt", (knative, "Route")),
        ("route", (knative, "Route")),
    ]:
        assert api_kinds.resolve(name) == group_kind, name
    assert api_kinds.key_kind((knative, "Service")) == "Service.serving.knative.dev"
    assert api_kinds.key_kind(("", "Service")) == "Service"
    with pytest.raises(api_kinds.UnknownKindName, match='unknown kind "pods"'):
        api_kinds.resolve("pods")
