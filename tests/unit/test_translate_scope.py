"""One scope per proxy: what of a snapshot applies to a proxy, looked up once, and the
keys under which proxies share tables, checked against what the translators read."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from amimesh.model.proxy import GatewayPort, InboundPort, Proxy, Upstream
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources.files import load_path
from amimesh.translate import gateway_listeners, gateway_routes, gateway_servers, routes, scope

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop" / "mesh"

SIDECAR = Proxy(
    id="frontend-0.default",
    workload="frontend",
    labels={"app": "frontend", "version": "v1"},
    outbound_port=15001,
    inbound=(InboundPort(port=8080, listen_port=16000, app_port=16001),),
)
GATEWAY = Proxy(
    id="istio-ingressgateway-0.istio-system",
    kind="gateway",
    workload="istio-ingressgateway",
    namespace="istio-system",
    labels={"istio": "ingressgateway", "app": "istio-ingressgateway"},
    gateway_ports=(GatewayPort(port=8080, listen_port=18080),),
)
# For each Proxy field, another value: translation must either read it through the
# sharing key, or not read it at all.
OTHER: dict[str, Any] = {
    "id": "other-9.default",
    "workload": "other",
    "service_account": "other-sa",
    "address": "127.0.0.2",
    "outbound_port": 15099,
    "inbound": (InboundPort(port=9090, listen_port=16100, app_port=16101),),
    "locality": "eu/west/a",
    "upstreams": (
        Upstream(host="catalog.default.svc.cluster.local", port=9000, listen_port=17000),
    ),
    "gateway_ports": (GatewayPort(port=8443, listen_port=18443),),
    "admin_port": 15999,
    "access_log": "/tmp/other.log",
    "access_log_format": "text",
    "max_concurrency": 7,
    "request_timeout_s": 30,
    "idle_timeout_s": 5,
}


@pytest.fixture(scope="module")
def shop() -> Snapshot:
    result = load_path(SHOP)
    assert not result.errors
    return build_snapshot(result.resources)


def test_every_proxy_field_is_covered_by_this_test() -> None:
    fields = {f.name for f in dataclasses.fields(Proxy)}
    assert fields - set(OTHER) == {"kind", "namespace", "labels"}


def test_one_lookup_per_namespace_and_labels(shop: Snapshot) -> None:
    scopes = scope.Scopes(shop)
    twin = dataclasses.replace(SIDECAR, id="frontend-1.default")
    one, two = scopes.of(SIDECAR), scopes.of(twin)
    assert one.policies is two.policies
    assert one == scope.of(shop, SIDECAR) and one != two
    other = scopes.of(dataclasses.replace(SIDECAR, labels={"app": "catalog"}))
    assert other.policies is not one.policies


def _serialized(messages: list[Any]) -> list[bytes]:
    return [m.SerializeToString(deterministic=True) for m in messages]


@pytest.mark.parametrize("field", sorted(OTHER))
def test_route_tables_read_only_what_their_sharing_key_holds(shop: Snapshot, field: str) -> None:
    other = dataclasses.replace(SIDECAR, **{field: OTHER[field]})
    key = routes.sharing_key(shop, SIDECAR)
    if routes.sharing_key(shop, other) != key:
        return  # not shared: nothing to check
    tables = _serialized(routes.route_configs(shop, SIDECAR))
    assert tables
    assert _serialized(routes.route_configs(shop, other)) == tables


@pytest.mark.parametrize("app_label", [True, False])
@pytest.mark.parametrize("field", sorted(OTHER))
def test_gateway_tables_read_only_what_their_sharing_key_holds(
    shop: Snapshot, field: str, app_label: bool
) -> None:
    # Without an `app` label, a proxy's tracing service name falls back to other fields.
    labels = {"istio": "ingressgateway"}
    gateway = GATEWAY if app_label else dataclasses.replace(GATEWAY, labels=labels)
    other = dataclasses.replace(gateway, **{field: OTHER[field]})
    if gateway_servers.sharing_key(other) != gateway_servers.sharing_key(gateway):
        return
    for translate in (gateway_listeners.listeners, gateway_routes.route_configs):
        tables = _serialized(translate(shop, gateway))
        assert tables  # the shop's Gateway selects it: there is something to compare
        assert _serialized(translate(shop, other)) == tables
