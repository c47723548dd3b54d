"""Resource references (what a resource makes Envoy fetch) and wire conversions."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from amimesh.translate.built import CLUSTER, LISTENER, ROUTE
from amimesh.xds import deps, encode, refs, samples, wire


def test_resource_name_is_read_without_decoding() -> None:
    assert refs.resource_name(samples.cluster("reviews").any) == "reviews"
    assert refs.resource_name(samples.load_assignment("reviews", []).any) == "reviews"
    assert refs.resource_name(samples.listener("out", 15001, "r").any) == "out"
    assert refs.resource_name(samples.route_config("r", body="x").any) == "r"
    assert refs.resource_name(any_pb2.Any(value=b"\xff\xff")) == ""


def test_eds_name_of_a_cluster() -> None:
    eds = samples.cluster("reviews").message
    assert refs.cluster_eds_name(eds) == "reviews"
    named = cluster_pb2.Cluster(name="reviews", type=cluster_pb2.Cluster.EDS)
    named.eds_cluster_config.service_name = "reviews-cla"
    assert refs.cluster_eds_name(named) == "reviews-cla"
    assert refs.cluster_eds_name(named, ads_only=True) is None  # no ADS config source
    static = samples.cluster("s", eds=False, endpoints=[("127.0.0.1", 80)]).message
    assert refs.cluster_eds_name(static) is None


def test_route_names_of_a_listener() -> None:
    listener: Any = samples.listener("out", 15001, "outbound").message
    assert refs.listener_route_names(listener) == {"outbound"}
    assert refs.listener_route_names(listener, ads_only=True) == {"outbound"}
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix="x",
        rds=hcm_pb2.Rds(
            route_config_name="elsewhere",
            config_source=config_source_pb2.ConfigSource(path="/tmp/routes.yaml"),
        ),
    )
    listener.filter_chains[0].filters[0].typed_config.Pack(manager)
    assert refs.listener_route_names(listener) == {"elsewhere"}
    assert refs.listener_route_names(listener, ads_only=True) == set()


def test_children_of_parents_that_exist() -> None:
    parents = {
        "a": samples.cluster("a"),
        "s": samples.cluster("s", eds=False, endpoints=[("127.0.0.1", 80)]),
    }
    available = {"a": samples.load_assignment("a", [])}
    assert deps.children(parents["a"]) == {"a"}
    accepted = ["a", "s", "gone"]
    assert deps.missing(accepted, parents, available, set())
    assert not deps.missing(accepted, parents, available, {"a"})
    assert not deps.missing(["a"], parents, {}, set())  # not generated: not waited for
    listener = samples.listener("l", 1, "r")
    assert deps.children(listener) == {"r"}
    assert deps.children(samples.route_config("r", body="x")) == frozenset()


def test_encoded_responses_parse_as_the_protocol_messages() -> None:
    a, b = samples.cluster("a"), samples.cluster("b")
    sotw = discovery_pb2.DiscoveryResponse.FromString(
        encode.sotw_response(wire.Response(CLUSTER, "7", "v1", (a, b)))
    )
    assert sotw == discovery_pb2.DiscoveryResponse(
        version_info="v1", type_url=CLUSTER, nonce="7", resources=[a.any, b.any]
    )
    delta = discovery_pb2.DeltaDiscoveryResponse.FromString(
        encode.delta_response(wire.Response(CLUSTER, "8", "s", (a,), ("gone",)))
    )
    assert delta == discovery_pb2.DeltaDiscoveryResponse(
        system_version_info="s",
        type_url=CLUSTER,
        nonce="8",
        resources=[discovery_pb2.Resource(name="a", version=a.version, resource=a.any)],
        removed_resources=["gone"],
    )


def test_resource_bytes_are_encoded_once_and_shared() -> None:
    big = samples.cluster("x" * 300)  # a length that needs a two-byte varint
    one = encode.sotw_response(wire.Response(CLUSTER, "1", "v", (big,)))
    two = encode.sotw_response(wire.Response(CLUSTER, "2", "v", (big,)))
    shared = big.encoded[encode._SOTW]
    assert one.endswith(shared) and two.endswith(shared)
    assert discovery_pb2.DiscoveryResponse.FromString(two).resources[0] == big.any


def test_requests_from_protobuf() -> None:
    nack = discovery_pb2.DiscoveryRequest(
        type_url=ROUTE, resource_names=["r"], version_info="v1", response_nonce="3"
    )
    nack.error_detail.CopyFrom(wire.error_to_proto(wire.ErrorDetail("bad")))
    assert wire.sotw_request_from_proto(nack) == wire.SotwRequest(
        ROUTE, ("r",), "v1", "3", wire.ErrorDetail("bad", 3)
    )
    delta = discovery_pb2.DeltaDiscoveryRequest(
        type_url=LISTENER,
        resource_names_subscribe=["*"],
        initial_resource_versions={"l": "x"},
    )
    assert wire.delta_request_from_proto(delta) == wire.DeltaRequest(
        LISTENER, ("*",), (), {"l": "x"}
    )
