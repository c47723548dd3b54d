"""`cli.render`: the API's and Envoy's JSON as the `ami` commands show it."""

from __future__ import annotations

import json
from typing import Any

import yaml

from amimesh.cli import render, render_envoy
from amimesh.resources import parse_documents

NOW = 1_700_000_000.0
ECHO = "outbound|80||echo.default.svc.cluster.local"


def lines(renderable: Any) -> list[str]:
    return [line.rstrip() for line in render.to_text(renderable).splitlines()]


def cells(line: str) -> list[str]:
    return line.split()


def proxy(pid: str, **types: str) -> dict[str, Any]:
    return {
        "id": pid,
        "workload": pid.split(".")[0],
        "namespace": "default",
        "mode": "delta",
        "admin_port": 15000,
        "connected_since": NOW - 125,
        "types": {name: {"state": state} for name, state in types.items()},
    }


def test_age() -> None:
    assert [render.age(NOW - s, NOW) for s in (0, 59, 61, 700, 3700, 90000)] == [
        "0s",
        "59s",
        "1m1s",
        "11m",
        "1h1m",
        "1d",
    ]
    assert render.age(None, NOW) == "-"


def test_proxies_table_and_nacks() -> None:
    nacked = proxy("web.default", CDS="NACK", EDS="SYNCED", LDS="STALE")
    nacked["types"]["CDS"]["last_nack"] = {
        "version": "7",
        "message": "cluster x: bad lb_policy",
        "resource_names": ["x"],
    }
    proxies = [proxy("api.default", CDS="SYNCED", EDS="SYNCED", LDS="SYNCED", RDS="SYNCED"), nacked]
    header, first, second = lines(render.proxies_table(proxies, NOW))
    assert cells(header) == [
        "PROXY",
        "WORKLOAD",
        "MODE",
        "CDS",
        "EDS",
        "LDS",
        "RDS",
        "ADMIN",
        "CONNECTED",
    ]
    assert cells(first) == ["api.default", "api.default", "delta", *["SYNCED"] * 4, "15000", "2m5s"]
    assert "NACK" in second and "STALE" in second and "NOT SENT" in second
    (nack,) = render.nacks(proxies)
    assert nack.plain == "web.default CDS NACK version 7 (x): cluster x: bad lb_policy"


def test_status_view() -> None:
    status = {
        "resources": 4,
        "config_errors": [
            "shop/vs.yaml: document 0 (line 1): VirtualService/default/r: spec.http[0].route[0]"
            ".weight: must be at least 0, got -5"
        ],
        "proxies": [proxy("web.default", CDS="SYNCED")],
        "instances": [
            {
                "workload": "web",
                "namespace": "default",
                "instance": "web-0",
                "pid": 41,
                "state": "backoff",
                "ready": False,
                "restarts": 3,
                "since": NOW - 5,
            }
        ],
    }
    text = lines(render.status_view(status, NOW))
    assert text[0] == "4 resources, 1 instances, 1 proxies, 1 config errors"
    row = text[text.index("Workloads") + 2]
    assert cells(row) == ["web", "default", "web-0", "backoff", "no", "3", "41", "5s"]
    assert text[-1] == "error: " + status["config_errors"][0]  # brackets survive
    empty = lines(render.status_view({"resources": 0}, NOW))
    assert "no instances" in empty and "no proxies connected" in empty


REVISIONS = [
    {"namespace": "default", "revision": "busy-00001", "configuration": "busy",
     "service": "busy", "ready": 2, "activator": False, "metric": "concurrency",
     "target": 0.7, "desired": 6, "requested": 3, "observed_stable": 4.25,
     "observed_panic": 4.0, "panic": True, "excess_burst_capacity": 0, "active": "active"},
    {"namespace": "shop", "revision": "bare-00001", "configuration": "bare", "service": "",
     "ready": 0, "activator": True, "metric": "concurrency", "target": None,
     "desired": None, "requested": None, "observed_stable": None, "observed_panic": None,
     "panic": False, "excess_burst_capacity": None, "active": None},
]  # fmt: skip


def test_status_shows_knative_revisions_when_there_are_any() -> None:
    text = lines(render.status_view({"resources": 1}, NOW, REVISIONS))
    at = text.index("Knative revisions")
    assert cells(text[at + 1]) == [
        "NAMESPACE",
        "REVISION",
        "SERVICE",
        "DESIRED",
        "READY",
        "CONCURRENCY",
        "PANIC",
        "ACTIVATOR",
    ]
    # DESIRED is the scale asked for (max-scale holds it at 3), CONCURRENCY the stable
    # window's; a revision not decided yet shows `-`.
    assert cells(text[at + 2]) == ["default", "busy-00001", "busy", "3", "2", "4.25", "yes", "no"]
    assert cells(text[at + 3]) == ["shop", "bare-00001", "-", "-", "0", "-", "-", "yes"]
    assert text.index("Workloads") < at < text.index("Proxies (xDS)")
    assert "Knative revisions" not in lines(render.status_view({"resources": 1}, NOW))


def test_top_shows_the_revisions_below_the_golden_metrics() -> None:
    from amimesh.cli import cmd_top

    text = lines(cmd_top.screen([], REVISIONS[:1], "workload", 30.0))
    at = text.index("Knative revisions (autoscaler)")
    assert any(line.startswith("golden metrics, last 30s") for line in text[:at])
    row = [c for c in cells(text[at + 4]) if c != "│"]
    assert row == ["default", "busy-00001", "busy", "3", "2", "4.25", "yes", "no"]
    assert "Knative revisions (autoscaler)" not in lines(cmd_top.screen([], [], "workload", 30))


ITEMS = [
    {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
        "source": "api",
    },
    {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "api", "namespace": "team"},
        "spec": {"http": [{"directResponse": {"status": 200}}]},
        "source": "shop/api.yaml",
    },
]


def test_resources_table_per_kind() -> None:
    header, first, second = lines(render.resources_table(ITEMS, namespaces=True))
    assert cells(header) == ["NAMESPACE", "NAME", "HOSTS", "GATEWAYS", "ROUTES", "SOURCE"]
    assert cells(first) == ["default", "reviews", "reviews", "mesh", "1", "api"]
    assert cells(second) == ["team", "api", "(delegate)", "mesh", "1", "shop/api.yaml"]
    svc = {
        "kind": "Service",
        "metadata": {"name": "reviews"},
        "spec": {
            "selector": {"app": "reviews"},
            "ports": [{"name": "http", "port": 80, "targetPort": 9080}],
        },
    }
    header, row = lines(render.resources_table([svc]))
    assert cells(header) == ["NAME", "PORTS", "SELECTOR", "SOURCE"]
    assert cells(row) == ["reviews", "http:80→9080", "app=reviews", "-"]
    mixed = lines(render.resources_table([ITEMS[0], svc]))
    assert cells(mixed[0]) == ["KIND", "NAME", "SOURCE"]


def test_a_knative_service_has_columns_of_its_own() -> None:
    ksvc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello"},
        "spec": {
            "template": {"spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go"}]}},
            "traffic": [
                {"latestRevision": True, "percent": 90},
                {"revisionName": "hello-1", "percent": 10, "tag": "v1"},
            ],
        },
    }
    header, row = lines(render.resources_table([ksvc]))
    assert cells(header) == ["NAME", "IMAGE", "TRAFFIC", "SOURCE"]
    assert cells(row)[:2] == ["hello", "ghcr.io/knative/helloworld-go"]
    assert "latest=90%, v1=10%" in row
    core = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"}, "spec": {}}
    mixed = lines(render.resources_table([ksvc, core]))
    assert cells(mixed[0]) == ["KIND", "NAME", "SOURCE"]
    assert cells(mixed[1])[0] == "Service.serving.knative.dev"
    assert cells(mixed[2])[0] == "Service"


def test_yaml_and_json_output_apply_back() -> None:
    text = render.resources_yaml(ITEMS)
    assert text.startswith("# source: api\napiVersion: networking.istio.io/v1\n")
    result = parse_documents(text, "out.yaml")
    assert result.ok and [r.ref for r in result.resources] == [
        "VirtualService/default/reviews",
        "VirtualService/team/api",
    ]
    as_list = json.loads(render.resources_json(ITEMS, single=False))
    assert as_list["kind"] == "List" and "source" not in as_list["items"][0]
    assert parse_documents(yaml.safe_dump(as_list), "list.yaml").ok
    one = json.loads(render.resources_json(ITEMS[:1], single=True))
    assert one["metadata"] == {"name": "reviews", "namespace": "default"}


def test_findings_view() -> None:
    findings = [
        {
            "code": "AMI0101",
            "severity": "Error",
            "resource": "VirtualService/default/reviews",
            "field": "spec.http[0].route[0].destination.host",
            "message": 'host "reviewz" is not a Service or ServiceEntry host',
            "hint": "define a Service",
            "source": "shop/vs.yaml",
        },
        {
            "code": "AMI0108",
            "severity": "Info",
            "resource": "VirtualService/default/api",
            "field": "spec.hosts",
            "message": "unused",
            "hint": "",
            "source": None,
        },
    ]
    assert lines(render.findings_view(findings)) == [
        "Error [AMI0101] VirtualService/default/reviews spec.http[0].route[0].destination.host"
        " (shop/vs.yaml)",
        '    host "reviewz" is not a Service or ServiceEntry host',
        "    hint: define a Service",
        "Info [AMI0108] VirtualService/default/api spec.hosts",
        "    unused",
        "1 error, 0 warnings, 1 info",
    ]
    assert lines(render.findings_view([])) == ["No problems found."]


# Trimmed from a real Envoy 1.40's /config_dump?include_eds and /clusters?format=json.
SOCKET = {"socket_address": {"address": "127.0.0.1", "port_value": 53769}}
DUMP: dict[str, Any] = {
    "configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {}},
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "version_info": "e6a4",
            "static_clusters": [
                {
                    "cluster": {
                        "name": "xds-grpc",
                        "type": "STATIC",
                        "load_assignment": {
                            "cluster_name": "xds-grpc",
                            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": SOCKET}}]}],
                        },
                    }
                }
            ],
            "dynamic_active_clusters": [
                {
                    "version_info": "cf96",
                    "cluster": {
                        "name": ECHO,
                        "type": "EDS",
                        "eds_cluster_config": {"eds_config": {"ads": {}}, "service_name": ECHO},
                    },
                }
            ],
            "dynamic_warming_clusters": [
                {"version_info": "d00d", "cluster": {"name": "outbound|81||echo", "type": "EDS"}}
            ],
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
            "dynamic_endpoint_configs": [
                {
                    "endpoint_config": {
                        "cluster_name": ECHO,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {"endpoint": {"address": SOCKET}, "health_status": "HEALTHY"},
                                    {"endpoint": {"address": SOCKET}},
                                ]
                            }
                        ],
                    }
                }
            ],
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "dynamic_listeners": [
                {
                    "name": "outbound",
                    "active_state": {
                        "version_info": "d142",
                        "listener": {
                            "name": "outbound",
                            "address": {
                                "socket_address": {"address": "127.0.0.1", "port_value": 54013}
                            },
                            "filter_chains": [
                                {
                                    "filters": [
                                        {
                                            "name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": {
                                                "rds": {"route_config_name": "outbound"}
                                            },
                                        }
                                    ]
                                }
                            ],
                        },
                    },
                },
                {"name": "bad", "error_state": {"details": "cannot bind 127.0.0.1:80"}},
            ],
        },
        {"@type": "type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump"},
        {
            "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs": [
                {
                    "version_info": "9",
                    "route_config": {
                        "name": "outbound",
                        "virtual_hosts": [
                            {
                                "name": "echo.default.svc.cluster.local:80",
                                "domains": [
                                    "echo",
                                    "echo:80",
                                    "echo.default",
                                    "echo.default:80",
                                    "x",
                                    "y",
                                ],
                                "routes": [{"match": {"prefix": "/"}}],
                            }
                        ],
                    },
                }
            ],
        },
    ]
}


def test_clusters_table() -> None:
    header, *rows = lines(render_envoy.clusters_table(DUMP))
    assert cells(header) == ["CLUSTER", "TYPE", "ENDPOINTS", "STATE", "VERSION"]
    assert [cells(r) for r in rows] == [
        ["xds-grpc", "STATIC", "1", "static", "-"],
        [ECHO, "EDS", "2", "active", "cf96"],
        ["outbound|81||echo", "EDS", "0", "warming", "d00d"],
    ]


def test_listeners_table() -> None:
    header, active, failed = lines(render_envoy.listeners_table(DUMP))
    assert cells(header) == ["LISTENER", "ADDRESS", "CHAINS", "ROUTES", "STATE", "VERSION"]
    assert cells(active) == ["outbound", "127.0.0.1:54013", "1", "outbound", "active", "d142"]
    assert "error: cannot bind 127.0.0.1:80" in failed


def test_routes_table() -> None:
    header, row = lines(render_envoy.routes_table(DUMP))
    assert cells(header)[:3] == ["ROUTE", "CONFIG", "VIRTUAL"]
    assert row.startswith("outbound")
    assert "echo, echo:80, echo.default, echo.default:80 +2 more" in row
    assert row.endswith("1")


def test_endpoints_table() -> None:
    clusters = {
        "cluster_statuses": [
            {
                "name": ECHO,
                "host_statuses": [
                    {
                        "address": SOCKET,
                        "health_status": {"eds_health_status": "HEALTHY"},
                        "weight": 1,
                    },
                    {
                        "address": SOCKET,
                        "health_status": {
                            "eds_health_status": "HEALTHY",
                            "failed_outlier_check": True,
                        },
                        "weight": 2,
                        "locality": {"region": "eu", "zone": "a"},
                    },
                ],
            }
        ]
    }
    header, ok, ejected = lines(render_envoy.endpoints_table(clusters))
    assert cells(header) == ["CLUSTER", "ENDPOINT", "HEALTH", "WEIGHT", "LOCALITY"]
    assert cells(ok) == [ECHO, "127.0.0.1:53769", "HEALTHY", "1", "-"]
    assert cells(ejected) == [ECHO, "127.0.0.1:53769", "UNHEALTHY", "(outlier)", "2", "eu/a"]


def test_dump_section_matches_whole_type_names() -> None:
    assert render_envoy.dump_section(DUMP, "RoutesConfigDump")["dynamic_route_configs"]
    assert render_envoy.dump_section(DUMP, "SecretsConfigDump") == {}


def test_no_emoji_codes_are_replaced() -> None:
    # Fingerprints and names may contain ":ab:"-like text; it must print as written.
    out = render.console()
    with out.capture() as captured:
        out.print("SHA256 A5:AB:D7", markup=False)
    assert "A5:AB:D7" in captured.get()
