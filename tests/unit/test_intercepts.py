"""Intercepts' pure parts: the header, the intercept's Workload, which endpoints plain
traffic reaches, the subset and the route built for a header intercept (sidecar and
gateway tables); the control plane's leases with a clock handed in."""

from __future__ import annotations

from typing import Any

import pytest

from amimesh.config.store import Store
from amimesh.controlplane.intercepts import InterceptConflict, InterceptNotFound, Intercepts
from amimesh.model import intercepts as model
from amimesh.model.proxy import GatewayPort, Proxy
from amimesh.model.snapshot import Instance, Snapshot, build_snapshot
from amimesh.resources import ParseResult, parse_documents, parse_object
from amimesh.resources.meta import Resource
from amimesh.resources.workload import Workload
from amimesh.translate import endpoints, gateway_routes, routes

MESH = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: api, labels: {app: api}, annotations: {ami.dev/request-timeout: "5"}}
spec:
  command: [python3, app.py]
  serviceAccount: api
  replicas: 3
  env: [{name: GREETING, value: hello}]
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: api}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: ["*"]
  gateways: [api]
  http:
    - match: [{uri: {prefix: /v1}}]
      route: [{destination: {host: api, port: {number: 8080}}}]
"""
HOST = "api.default.svc.cluster.local"


def resources(text: str = MESH) -> list[Resource]:
    result = parse_documents(text, "mesh.yaml")
    assert not result.errors, result.errors
    return list(result.resources)


def target() -> Workload:
    (w,) = [r for r in resources() if isinstance(r, Workload)]
    return w


def with_intercept(header: tuple[str, str] | None, *ready: Instance) -> Snapshot:
    doc = model.intercept_workload(target(), "ab12", header, None)
    made = parse_object(doc, "intercepts")
    assert not made.errors, made.errors
    return build_snapshot([*resources(), *made.resources], ready)


MANAGED = Instance("api-0.default", "api", labels={"app": "api"}, ports={8080: 1001})


def intercepting(mode: str) -> Instance:
    labels = {"app": "api", model.INTERCEPT_LABEL: "ab12", model.MODE_LABEL: mode}
    return Instance(
        "api-intercept-ab12-0.default", "api-intercept-ab12", labels=labels, ports={8080: 2002}
    )


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("x-dev=alice", ("x-dev", "alice")), ("X-Dev=a=b", ("x-dev", "a=b"))],
)
def test_a_header_is_name_and_value(text: str, parsed: tuple[str, str]) -> None:
    assert model.parse_header(text) == parsed


@pytest.mark.parametrize(
    "text", ["x-dev", "=v", "x dev=v", "x-dev=", "host=a", ":path=/", "a=\x01"]
)
def test_a_bad_header_is_refused(text: str) -> None:
    with pytest.raises(model.InterceptError):
        model.parse_header(text)


def test_the_intercept_workload_is_the_workload_with_a_stand_in() -> None:
    doc = model.intercept_workload(target(), "ab12", ("x-dev", "alice"), 9999)
    meta, spec = doc["metadata"], doc["spec"]
    assert meta["name"] == "api-intercept-ab12"
    assert meta["labels"] == {
        "app": "api",
        "ami.dev/intercept": "ab12",
        "ami.dev/intercept-mode": "header",
    }
    assert meta["annotations"] == {
        "ami.dev/request-timeout": "5",  # the same sidecar config
        "ami.dev/intercept-of": "api",
        "ami.dev/reload": "false",
        "ami.dev/intercept-header": "x-dev=alice",
        "ami.dev/intercept-port": "9999",
    }
    assert spec["command"] == ["sleep", "infinity"] and spec["args"] == []
    assert spec["replicas"] == 1 and spec["serviceAccount"] == "api"
    assert spec["env"] == [{"name": "GREETING", "value": "hello"}]
    made = parse_object(doc, "intercepts")
    assert not made.errors
    (w,) = made.resources
    assert isinstance(w, Workload)
    assert model.intercept_of(w) == model.Intercept("ab12", "api", "default", ("x-dev", "alice"))
    assert model.fixed_port(w.metadata.annotations) == 9999


def test_plain_traffic_skips_a_header_intercept_and_only_reaches_an_all_intercept() -> None:
    plain = [{"app": "api"}, {"app": "api"}]
    header = {"app": "api", model.INTERCEPT_LABEL: "x", model.MODE_LABEL: "header"}
    every = {"app": "api", model.INTERCEPT_LABEL: "y", model.MODE_LABEL: "all"}
    assert model.visible([*plain, header]) == [True, True, False]
    assert model.visible([*plain, every]) == [False, False, True]
    assert model.visible(plain) == [True, True]


def _addresses(snap: Snapshot, subset: str | None) -> list[int]:
    svc = snap.services[HOST]
    return sorted(e.port for e in endpoints.eds_endpoints(snap, svc, 8080, subset))


def test_a_header_intercept_is_a_subset_of_its_own_and_in_no_other_cluster() -> None:
    snap = with_intercept(("x-dev", "alice"), MANAGED, intercepting("header"))
    assert snap.intercepts[HOST] == (model.Intercept("ab12", "api", "default", ("x-dev", "alice")),)
    assert _addresses(snap, None) == [1001]
    assert _addresses(snap, "intercept-ab12") == [2002]
    names = [cla.cluster_name for cla in endpoints.load_assignments(snap)]
    assert f"outbound|8080|intercept-ab12|{HOST}" in names


def test_an_intercept_of_every_request_replaces_the_managed_endpoints_while_ready() -> None:
    assert _addresses(with_intercept(None, MANAGED, intercepting("all")), None) == [2002]
    assert _addresses(with_intercept(None, MANAGED), None) == [1001]  # not ready yet
    assert with_intercept(None, MANAGED).intercepts == {}  # no header: no route of its own


def _routes(table: Any, domain: str) -> list[Any]:
    for vh in table.virtual_hosts:
        if domain in vh.domains:
            return list(vh.routes)
    raise AssertionError(f"no virtual host {domain}")


def _header(route: Any) -> list[tuple[str, str]]:
    return [(h.name, h.string_match.exact) for h in route.match.headers]


def test_every_sidecar_routes_the_header_to_the_intercept_ahead_of_the_route() -> None:
    snap = with_intercept(("x-dev", "alice"), MANAGED, intercepting("header"))
    found = _routes(routes.outbound(snap, "default", {"app": "client"}), "api:8080")
    assert [(_header(r), r.route.cluster) for r in found] == [
        ([("x-dev", "alice")], f"outbound|8080|intercept-ab12|{HOST}"),
        ([], f"outbound|8080||{HOST}"),
    ]
    # Without the intercept the table is as it was.
    plain = _routes(routes.outbound(build_snapshot(resources()), "default", {}), "api:8080")
    assert [r.route.cluster for r in plain] == [f"outbound|8080||{HOST}"]


def test_the_gateway_keeps_the_routes_match_and_adds_the_header() -> None:
    snap = with_intercept(("x-dev", "alice"), MANAGED, intercepting("header"))
    proxy = Proxy(
        id="gw.istio-system",
        kind="gateway",
        workload="istio-ingressgateway",
        namespace="istio-system",
        labels={"istio": "ingressgateway"},
        gateway_ports=(GatewayPort(8080, 8080),),
    )
    (table,) = gateway_routes.route_configs(snap, proxy)
    found = list(table.virtual_hosts[0].routes)
    assert [(r.match.prefix, _header(r), r.route.cluster) for r in found] == [
        ("/v1", [("x-dev", "alice")], f"outbound|8080|intercept-ab12|{HOST}"),
        ("/v1", [], f"outbound|8080||{HOST}"),
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _store() -> Store:
    store = Store()
    store.set_source("mesh.yaml", ParseResult(resources=resources()))
    return store


def test_an_intercept_is_a_workload_in_the_store_until_its_lease_runs_out() -> None:
    clock = Clock()
    store = _store()
    icpts = Intercepts(store, lease_s=10.0, clock=clock)
    made = icpts.create("default", "api", header=("x-dev", "alice"), port=None)
    assert made["instance"] == f"api-intercept-{made['id']}-0.default"
    names = {r.name for r in store.resources() if isinstance(r, Workload)}
    assert names == {"api", f"api-intercept-{made['id']}"}
    clock.now += 8
    icpts.renew(made["id"])
    clock.now += 8
    assert icpts.expire() == []  # renewed 8 s ago
    clock.now += 3
    assert icpts.expire() == [made["id"]]
    assert {r.name for r in store.resources() if isinstance(r, Workload)} == {"api"}
    with pytest.raises(InterceptNotFound):
        icpts.renew(made["id"])


def test_intercepts_that_would_take_the_same_traffic_are_refused() -> None:
    icpts = Intercepts(_store(), clock=Clock())
    first = icpts.create("default", "api", header=("x-dev", "alice"), port=None)
    with pytest.raises(InterceptConflict):
        icpts.create("default", "api", header=("x-dev", "alice"), port=None)
    bob = icpts.create("default", "api", header=("x-dev", "bob"), port=None)
    with pytest.raises(InterceptConflict):  # every request: not beside another
        icpts.create("default", "api", header=None, port=None)
    icpts.end(first["id"])
    icpts.end(bob["id"])
    every = icpts.create("default", "api", header=None, port=None)
    with pytest.raises(InterceptConflict):
        icpts.create("default", "api", header=("x-dev", "carol"), port=None)
    with pytest.raises(InterceptNotFound):
        icpts.create("default", "nope", header=None, port=None)
    with pytest.raises(InterceptNotFound):  # an intercept is not intercepted
        icpts.create("default", f"api-intercept-{first['id']}", header=None, port=None)
    icpts.end(every["id"])
    assert icpts.items() == []


def test_the_command_line_keeps_the_commands_own_options() -> None:
    from amimesh.cli import cmd_intercept, main

    args = main.parser().parse_args(
        ["intercept", "api", "--header", "x-dev=alice", "--", "python3", "-m", "pdb", "--header"]
    )
    opts, command = cmd_intercept.split(args.rest)
    assert (opts.workload, opts.header, opts.namespace, opts.port) == (
        "api",
        "x-dev=alice",
        "default",
        None,
    )
    assert command == ["python3", "-m", "pdb", "--header"]
    opts, command = cmd_intercept.split(["api", "-n", "shop", "--port", "9000"])
    assert (opts.namespace, opts.port, command) == ("shop", 9000, [])


def test_the_intercept_instance_is_planned_as_the_workload_with_its_own_names() -> None:
    from itertools import count
    from pathlib import Path

    from amimesh.runtime import plan
    from amimesh.runtime.state import StateDir

    doc = model.intercept_workload(target(), "ab12", ("x-dev", "alice"), 9999)
    (w,) = parse_object(doc, "intercepts").resources
    assert isinstance(w, Workload)
    ports = count(41000)
    spec = plan.workload_instance(
        w,
        0,
        services=(),
        allocate=lambda: next(ports),
        state=StateDir(Path("/state/m")),
        xds_port=40000,
        config_dir=Path("/conf"),
    )
    assert spec.id == "api-intercept-ab12-0.default"
    (inbound,) = spec.agent.proxy.inbound
    assert inbound.app_port == 9999 and inbound.listen_port == 41000  # --port
    assert spec.agent.identity is not None
    assert spec.agent.identity.spiffe_id == "spiffe://cluster.local/ns/default/sa/api"
    assert spec.agent.proxy.request_timeout_s == 5  # the workload's sidecar config
    assert spec.agent.app is not None and spec.agent.app.command == ("sleep", "infinity")
