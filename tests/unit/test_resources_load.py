"""Good input: every kind loads from realistic YAML, from text, objects, files and directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from amimesh.resources import (
    DestinationRule,
    ServiceEntry,
    VirtualService,
    Workload,
    WorkloadEntry,
    kube,
    load_path,
    parse_documents,
    parse_object,
)
from amimesh.resources.meta import Resource

BOOKINFO = Path(__file__).parent / "testdata" / "resources" / "bookinfo"


def by_ref(resources: list[Resource]) -> dict[str, Resource]:
    return {r.ref: r for r in resources}


@pytest.fixture(scope="module")
def bookinfo() -> dict[str, Resource]:
    result = load_path(BOOKINFO)
    assert result.errors == []
    assert result.ok
    return by_ref(result.resources)


def test_directory_is_walked_recursively_sorted_and_hidden_files_skipped() -> None:
    # .hidden.yaml, .drafts/wip.yaml and README.txt are broken: they must not be read.
    result = load_path(BOOKINFO)
    assert [r.ref for r in result.resources] == [
        # external/egress.yaml
        "ServiceEntry/default/httpbin-ext",
        "ServiceEntry/default/legacy-ratings",
        "WorkloadEntry/default/details-vm",
        "ServiceEntry/default/details-legacy",
        # kubectl-list.yml
        "VirtualService/shop/cart",
        "DestinationRule/shop/cart",
        # networking/delegate.yml
        "VirtualService/default/bookinfo-root",
        "VirtualService/default/productpage-routes",
        # networking/destination-rules.yaml
        "DestinationRule/default/reviews",
        "DestinationRule/default/ratings",
        "DestinationRule/default/details",
        # networking/virtual-services.yaml
        "VirtualService/default/productpage",
        "VirtualService/default/reviews",
        "VirtualService/default/ratings",
        "VirtualService/default/details",
        # services.yaml
        "Service/default/details",
        "Service/default/ratings",
        "Service/default/reviews",
        "Service/default/productpage",
        "Workload/default/reviews-v1",
        "Workload/default/reviews-v2",
    ]


def test_services(bookinfo: dict[str, Resource]) -> None:
    reviews = bookinfo["Service/default/reviews"]
    assert isinstance(reviews, kube.Service)
    assert reviews.apiVersion == "v1"
    assert [(p.name, p.port, p.targetPort) for p in reviews.spec.ports] == [
        ("http", 9080, "http"),
        ("grpc-admin", 9443, None),
    ]
    assert reviews.spec.selector == {"app": "reviews"}
    page = bookinfo["Service/default/productpage"]
    assert page.metadata.creationTimestamp == "2025-03-04T11:33:02Z"  # stays a string
    assert page.status == {"loadBalancer": {}}


def test_workloads(bookinfo: dict[str, Resource]) -> None:
    v1 = bookinfo["Workload/default/reviews-v1"]
    assert isinstance(v1, Workload)
    assert v1.metadata.labels == {"app": "reviews", "version": "v1"}
    assert v1.spec.command == ["python", "-m", "bookinfo.reviews"]
    assert v1.spec.replicas == 2
    assert v1.spec.readinessProbe is not None
    assert v1.spec.readinessProbe.httpGet is not None
    assert v1.spec.readinessProbe.httpGet.port == "http"
    assert v1.spec.readinessProbe.periodSeconds == 0.5
    v2 = bookinfo["Workload/default/reviews-v2"]
    assert isinstance(v2, Workload) and v2.spec.readinessProbe is not None
    assert v2.spec.readinessProbe.tcpSocket is not None
    assert v2.spec.readinessProbe.tcpSocket.port == 9080


def test_virtual_services(bookinfo: dict[str, Resource]) -> None:
    reviews = bookinfo["VirtualService/default/reviews"]
    assert isinstance(reviews, VirtualService)
    assert reviews.apiVersion == "networking.istio.io/v1beta1"
    assert reviews.spec.hosts == ["reviews.default.svc.cluster.local"]
    jason, split = reviews.spec.http
    assert jason.match[0].headers["end-user"].exact == "jason"
    assert [(d.destination.subset, d.weight) for d in split.route] == [("v1", 50), ("v3", 50)]
    assert split.retries is not None
    assert split.retries.retryOn == "gateway-error,connect-failure,503"
    assert split.retries.perTryTimeout == 2.0

    ratings = bookinfo["VirtualService/default/ratings"]
    assert isinstance(ratings, VirtualService)
    assert ratings.spec.hosts == ["ratings.default"]  # name.namespace
    fault = ratings.spec.http[0].fault
    assert fault is not None and fault.delay is not None and fault.abort is not None
    assert fault.delay.fixedDelay == 7.0
    assert fault.abort.httpStatus == 500
    assert ratings.spec.http[1].mirrorPercentage is not None
    assert ratings.spec.http[1].mirrorPercentage.value == 25.5

    details = bookinfo["VirtualService/default/details"]
    assert isinstance(details, VirtualService)
    redirect, direct, routed = details.spec.http
    assert redirect.redirect is not None and redirect.redirect.redirectCode == 301
    assert direct.directResponse is not None and direct.directResponse.status == 200
    assert routed.corsPolicy is not None and routed.corsPolicy.maxAge == 86400.0

    page = bookinfo["VirtualService/default/productpage"]
    assert isinstance(page, VirtualService)
    assert page.spec.http[0].timeout == 10.0
    uri = page.spec.http[0].match[2].uri
    assert uri is not None and uri.regex == "^/api/v1/products(/[0-9]+)?$"


def test_delegation(bookinfo: dict[str, Resource]) -> None:
    root = bookinfo["VirtualService/default/bookinfo-root"]
    assert isinstance(root, VirtualService)
    assert root.spec.http[0].delegate is not None
    assert root.spec.http[0].delegate.name == "productpage-routes"
    delegate = bookinfo["VirtualService/default/productpage-routes"]
    assert isinstance(delegate, VirtualService) and delegate.spec.hosts == []


def test_destination_rules(bookinfo: dict[str, Resource]) -> None:
    reviews = bookinfo["DestinationRule/default/reviews"]
    assert isinstance(reviews, DestinationRule)
    assert [s.name for s in reviews.spec.subsets] == ["v1", "v2", "v3"]
    assert reviews.spec.trafficPolicy is not None
    assert reviews.spec.trafficPolicy.loadBalancer is not None
    assert reviews.spec.trafficPolicy.loadBalancer.simple == "LEAST_REQUEST"
    ratings = bookinfo["DestinationRule/default/ratings"]
    assert isinstance(ratings, DestinationRule) and ratings.spec.trafficPolicy is not None
    lb = ratings.spec.trafficPolicy.loadBalancer
    assert lb is not None and lb.consistentHash is not None
    assert lb.consistentHash.httpCookie is not None
    assert lb.consistentHash.httpCookie.name == "user"
    details = bookinfo["DestinationRule/default/details"]
    assert isinstance(details, DestinationRule) and details.spec.trafficPolicy is not None
    od = details.spec.trafficPolicy.outlierDetection
    assert od is not None and od.interval == 300.0 and od.baseEjectionTime == 900.0
    pool = details.spec.trafficPolicy.connectionPool
    assert pool is not None and pool.tcp is not None and pool.tcp.connectTimeout == 0.03


def test_service_entries_and_workload_entries(bookinfo: dict[str, Resource]) -> None:
    httpbin = bookinfo["ServiceEntry/default/httpbin-ext"]
    assert isinstance(httpbin, ServiceEntry)
    assert httpbin.spec.resolution == "DNS"
    assert [(p.number, p.protocol) for p in httpbin.spec.ports] == [(80, "HTTP"), (443, "TLS")]
    legacy = bookinfo["ServiceEntry/default/legacy-ratings"]
    assert isinstance(legacy, ServiceEntry)
    assert [e.address for e in legacy.spec.endpoints] == ["192.168.10.5", "192.168.10.6"]
    assert legacy.spec.endpoints[0].ports == {"http": 8081}
    vm = bookinfo["WorkloadEntry/default/details-vm"]
    assert isinstance(vm, WorkloadEntry)
    assert vm.spec.address == "10.0.0.7" and vm.spec.serviceAccount == "bookinfo-details"
    selected = bookinfo["ServiceEntry/default/details-legacy"]
    assert isinstance(selected, ServiceEntry) and selected.spec.workloadSelector is not None


def test_kubectl_list(bookinfo: dict[str, Resource]) -> None:
    cart = bookinfo["VirtualService/shop/cart"]
    assert isinstance(cart, VirtualService) and cart.namespace == "shop"
    assert "DestinationRule/shop/cart" in bookinfo


def test_multi_document_text_skips_empty_documents() -> None:
    text = (
        "---\n# nothing here\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n"
        "---\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: shop}\n"
        "spec: {ports: [{port: 81}]}\n---\n"
    )
    result = parse_documents(text, "svc.yaml")
    assert result.errors == []
    assert [r.ref for r in result.resources] == ["Service/default/a", "Service/shop/b"]


def test_same_name_in_another_namespace_or_kind_is_no_duplicate() -> None:
    svc = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: r, namespace: %s}\n"
        "spec: {ports: [{port: 80}]}\n"
    )
    dr = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
        "spec: {host: r}\n"
    )
    result = parse_documents("---\n".join([svc % "a", svc % "b", dr]), "x.yaml")
    assert result.errors == [] and len(result.resources) == 3


def test_versions_of_one_kind_are_one_resource() -> None:
    vs = (
        "apiVersion: networking.istio.io/%s\nkind: VirtualService\nmetadata: {name: r}\n"
        "spec: {hosts: [r], http: [{route: [{destination: {host: r}}]}]}\n"
    )
    result = parse_documents(vs % "v1alpha3" + "---\n" + vs % "v1", "x.yaml")
    assert [e.field for e in result.errors] == ["metadata.name"]


def test_parse_object_takes_decoded_documents() -> None:
    obj = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": "shop"},
        "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
    }
    result = parse_object(obj, "kube:shop/reviews")
    assert [r.ref for r in result.resources] == ["DestinationRule/shop/reviews"]
    broken = parse_object({**obj, "spec": {"host": ""}}, "kube:shop/reviews")
    assert [str(e) for e in broken.errors] == [
        "kube:shop/reviews: DestinationRule/shop/reviews: spec.host: must not be empty"
    ]


def test_load_path_reads_one_file(tmp_path: Path) -> None:
    f = tmp_path / "svc.txt"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 1}]}\n")
    result = load_path(str(f))
    assert [r.ref for r in result.resources] == ["Service/default/a"]


def test_duplicates_across_files(tmp_path: Path) -> None:
    svc = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 1}]}\n"
    (tmp_path / "a.yaml").write_text(svc)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "c.yml").write_text("# comment\n" + svc)
    result = load_path(tmp_path)
    assert [str(e) for e in result.errors] == [
        f"{tmp_path}/b/c.yml: document 0 (line 2): Service/default/a: metadata.name: "
        f"Service/default/a is already defined in {tmp_path}/a.yaml: document 0 (line 1)"
    ]
    assert len(result.resources) == 1


def test_load_path_problems_are_errors(tmp_path: Path) -> None:
    missing = load_path(tmp_path / "nope")
    assert [str(e) for e in missing.errors] == [f"{tmp_path}/nope: no such file or directory"]
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    result = load_path(tmp_path)
    assert [str(e) for e in result.errors] == [
        f"{tmp_path}/latin1.yaml: document 0 (line 1): is not UTF-8 text: byte 0xe9 at line 1, "
        "column 10"
    ]
    assert result.resources == []
