"""The outbound route table: virtual hosts, domains, matches, placement and sharing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import build_snapshot
from amimesh.translate import routes
from tests.unit.test_translate_routes_support import (
    BUILT,
    DEFAULT_RETRY,
    REVIEWS,
    as_dict,
    dest,
    dr,
    envoy_validate,
    route_dicts,
    se,
    static_bootstrap,
    svc,
    table,
    vhost,
    vs,
)


def forward(cluster: str, **extra: Any) -> dict[str, Any]:
    """A route action as the translator writes it for a plain destination."""
    return {"cluster": cluster, "timeout": "0s", "retry_policy": DEFAULT_RETRY, **extra}


def test_service_without_virtual_service_gets_istio_default_route() -> None:
    config = table([svc("reviews", 9080)])
    assert config.name == "outbound"
    assert config.max_direct_response_body_size_bytes.value == 1024 * 1024
    v = vhost(config, f"{REVIEWS}:9080")
    assert list(v.domains) == [
        "reviews",
        "reviews:9080",
        "reviews.default",
        "reviews.default:9080",
        "reviews.default.svc",
        "reviews.default.svc:9080",
        REVIEWS,
        f"{REVIEWS}:9080",
    ]
    assert v.include_request_attempt_count
    assert [as_dict(r) for r in v.routes] == [
        {
            "name": "default",
            "match": {"prefix": "/"},
            "route": forward(f"outbound|9080||{REVIEWS}"),
            "decorator": {"operation": f"{REVIEWS}:9080/*"},
        }
    ]


def test_short_name_only_in_the_same_namespace() -> None:
    config = table([svc("reviews", 9080, ns="shop")], Proxy(id="c", namespace="default"))
    domains = list(vhost(config, "reviews.shop.svc.cluster.local:9080").domains)
    assert "reviews" not in domains and "reviews:9080" not in domains
    assert "reviews.shop:9080" in domains and "reviews.shop" in domains


def test_portless_names_go_to_port_80_else_the_first_http_port() -> None:
    config = table(
        [
            svc("web", 8080, 80),
            svc("api", 9090, 9091),
            svc("db", ("tcp-db", 5432), ("http-admin", 8081)),
        ]
    )
    web = "web.default.svc.cluster.local"
    assert "web" in vhost(config, f"{web}:80").domains
    assert "web" not in vhost(config, f"{web}:8080").domains
    assert list(vhost(config, f"{web}:8080").domains)[0] == "web:8080"
    api = "api.default.svc.cluster.local"
    assert "api" in vhost(config, f"{api}:9090").domains
    assert "api" not in vhost(config, f"{api}:9091").domains
    # TCP ports get no virtual host; the HTTP one takes the portless names.
    db = "db.default.svc.cluster.local"
    assert [v.name for v in config.virtual_hosts if v.name.startswith(db)] == [f"{db}:8081"]
    assert "db" in vhost(config, f"{db}:8081").domains


def test_service_entry_hosts_with_and_without_port() -> None:
    entry = se(
        "httpbin",
        ["httpbin.org"],
        [
            {"number": 80, "name": "http", "protocol": "HTTP"},
            {"number": 443, "name": "https", "protocol": "HTTPS"},
        ],
    )
    config = table([entry])
    assert [(v.name, list(v.domains)) for v in config.virtual_hosts] == [
        ("httpbin.org:80", ["httpbin.org", "httpbin.org:80"])
    ]
    assert (
        route_dicts(config, "httpbin.org:80")[0]["route"]["cluster"] == "outbound|80||httpbin.org"
    )


def test_a_domain_is_never_named_twice() -> None:
    # The external host "shop.prod" collides with a name form of Service shop/prod.
    entry = se("ext", ["shop.prod"], [{"number": 80, "name": "http", "protocol": "HTTP"}])
    config = table([entry, svc("shop", 80, ns="prod")])
    domains = [d for v in config.virtual_hosts for d in v.domains]
    assert len(domains) == len(set(domains))
    assert "shop.prod" in vhost(config, "shop.prod:80").domains
    assert "shop.prod.svc:80" in vhost(config, "shop.prod.svc.cluster.local:80").domains


def test_match_conditions_translate_to_envoy_matchers() -> None:
    match = {
        "name": "m",
        "uri": {"prefix": "/api"},
        "ignoreUriCase": True,
        "headers": {
            "end-user": {"exact": "jason"},
            "x-tenant": {"prefix": "acme-"},
            "x-trace": {"regex": "^[0-9a-f]+$"},
            "x-present": {},
        },
        "withoutHeaders": {"x-debug": {"exact": "1"}, "x-canary": {}},
        "queryParams": {"v": {"exact": "2"}, "beta": {}, "q": {"prefix": "a"}},
        "method": {"exact": "GET"},
        "authority": {"regex": "reviews(:9080)?"},
    }
    config = table(
        [svc("reviews"), vs("r", ["reviews"], [{"match": [match], "route": [dest("reviews")]}])]
    )
    [route] = route_dicts(config, f"{REVIEWS}:9080")
    assert route["match"] == {
        "prefix": "/api",
        "case_sensitive": False,
        "headers": [
            {"name": "end-user", "string_match": {"exact": "jason"}},
            {"name": "x-canary", "present_match": True, "invert_match": True},
            {
                "name": "x-debug",
                "string_match": {"exact": "1"},
                "invert_match": True,
                "treat_missing_header_as_empty": True,
            },
            {"name": "x-present", "present_match": True},
            {"name": "x-tenant", "string_match": {"prefix": "acme-"}},
            {"name": "x-trace", "string_match": {"safe_regex": {"regex": "^[0-9a-f]+$"}}},
            {"name": ":method", "string_match": {"exact": "GET"}},
            {"name": ":authority", "string_match": {"safe_regex": {"regex": "reviews(:9080)?"}}},
        ],
        "query_parameters": [
            {"name": "beta", "present_match": True},
            {"name": "q", "string_match": {"prefix": "a"}},
            {"name": "v", "string_match": {"exact": "2"}},
        ],
    }
    assert route["name"] == "m"


def test_uri_exact_and_regex() -> None:
    http = [
        {"match": [{"uri": {"exact": "/login"}}], "route": [dest("reviews")]},
        {"match": [{"uri": {"regex": "^/r/[0-9]+$"}}], "route": [dest("reviews")]},
    ]
    config = table([svc("reviews"), vs("r", ["reviews"], http)])
    assert [r["match"] for r in route_dicts(config, f"{REVIEWS}:9080")] == [
        {"path": "/login"},
        {"safe_regex": {"regex": "^/r/[0-9]+$"}},
    ]


def test_several_matches_are_one_route_each_in_order_until_a_catch_all() -> None:
    http = [
        {
            "name": "first",
            "match": [
                {"name": "a", "uri": {"prefix": "/a"}},
                {"name": "b", "headers": {"x": {"exact": "1"}}},
            ],
            "route": [dest("reviews", "v2")],
        },
        {"name": "rest", "route": [dest("reviews", "v1")]},
        {"name": "unreachable", "route": [dest("reviews", "v2")]},
    ]
    config = table([svc("reviews"), dr("reviews", "v1", "v2"), vs("r", ["reviews"], http)])
    got = route_dicts(config, f"{REVIEWS}:9080")
    assert [(r["name"], r["route"]["cluster"]) for r in got] == [
        ("first.a", f"outbound|9080|v2|{REVIEWS}"),
        ("first.b", f"outbound|9080|v2|{REVIEWS}"),
        ("rest", f"outbound|9080|v1|{REVIEWS}"),
    ]
    v = vhost(config, f"{REVIEWS}:9080")
    assert v.routes[0].metadata.filter_metadata["ami"]["config"] == "VirtualService/default/r"
    assert v.routes[0].decorator.operation == f"{REVIEWS}:9080/a*"


def test_match_port_selects_the_virtual_host() -> None:
    http = [
        {"match": [{"port": 8080}], "route": [dest("web", port=8080)]},
    ]
    config = table([svc("web", 80, 8080), vs("w", ["web"], http)])
    web = "web.default.svc.cluster.local"
    on_8080 = route_dicts(config, f"{web}:8080")
    assert [r.get("name") for r in on_8080] == [None]
    # Port 80 has no VirtualService route left, so it keeps the default route.
    assert [r["name"] for r in route_dicts(config, f"{web}:80")] == ["default"]


def test_destination_port_defaults_to_the_only_port_else_the_virtual_host_port() -> None:
    http = [
        {"match": [{"uri": {"prefix": "/one"}}], "route": [dest("reviews")]},
        {"match": [{"uri": {"prefix": "/multi"}}], "route": [dest("web")]},
        {"match": [{"uri": {"prefix": "/explicit"}}], "route": [dest("web", port=8080)]},
    ]
    config = table([svc("reviews", 9080), svc("web", 80, 8080), vs("r", ["reviews", "web"], http)])
    web = "web.default.svc.cluster.local"
    on_80 = [r["route"]["cluster"] for r in route_dicts(config, f"{web}:80")]
    assert on_80 == [
        f"outbound|9080||{REVIEWS}",
        f"outbound|80||{web}",
        f"outbound|8080||{web}",
    ]
    on_8080 = [r["route"]["cluster"] for r in route_dicts(config, f"{web}:8080")]
    assert on_8080[1] == f"outbound|8080||{web}"


def test_source_labels_and_namespace_decide_per_proxy() -> None:
    http = [
        {
            "match": [{"sourceLabels": {"app": "productpage", "version": "v2"}}],
            "route": [dest("reviews", "v2")],
        },
        {"match": [{"sourceNamespace": "test"}], "route": [dest("reviews", "v3")]},
        {"route": [dest("reviews", "v1")]},
    ]
    resources = [
        svc("reviews", ns="default"),
        dr("reviews", "v1", "v2", "v3"),
        vs("r", ["reviews.default.svc.cluster.local"], http),
    ]

    def subsets(proxy: Proxy) -> list[str]:
        got = route_dicts(table(resources, proxy), f"{REVIEWS}:9080")
        return [r["route"]["cluster"].split("|")[2] for r in got]

    pp2 = Proxy(id="a", labels={"app": "productpage", "version": "v2"})
    pp1 = Proxy(id="b", labels={"app": "productpage", "version": "v1"})
    tester = Proxy(id="c", namespace="test", labels={"app": "productpage"})
    # For a proxy that a source-only match selects, that route takes everything.
    assert subsets(pp2) == ["v2"]
    assert subsets(pp1) == ["v1"]
    assert subsets(tester) == ["v3"]

    snap = build_snapshot(resources)
    same = Proxy(id="d", labels={"app": "productpage", "version": "v2", "pod": "x"})
    assert routes.sharing_key(snap, pp2) == routes.sharing_key(snap, same)
    assert routes.sharing_key(snap, pp2) != routes.sharing_key(snap, pp1)
    assert routes.sharing_key(snap, pp1) != routes.sharing_key(snap, tester)


def test_only_mesh_bound_and_exported_virtual_services_apply() -> None:
    to_v2 = [{"route": [dest("reviews", "v2")]}]
    resources = [
        svc("reviews"),
        dr("reviews", "v2"),
        vs("gw-only", ["reviews"], to_v2, gateways=["ingress"]),
        vs("private", ["reviews"], to_v2, exportTo=["."]),
    ]
    same_ns = route_dicts(table(resources), f"{REVIEWS}:9080")
    assert [r.get("name") for r in same_ns] == [None]  # from "private"
    other_ns = route_dicts(table(resources, Proxy(id="x", namespace="other")), f"{REVIEWS}:9080")
    assert [r["name"] for r in other_ns] == ["default"]
    mesh_too = [
        svc("reviews"),
        dr("reviews", "v2"),
        vs("both", ["reviews"], to_v2, gateways=["ingress", "mesh"]),
    ]
    assert route_dicts(table(mesh_too), f"{REVIEWS}:9080")[0]["route"]["cluster"].endswith(
        f"|9080|v2|{REVIEWS}"
    )


def test_match_gateways_must_name_mesh_for_sidecars() -> None:
    http = [
        {
            "match": [{"gateways": ["ingress"], "uri": {"prefix": "/gw"}}],
            "route": [dest("reviews")],
        },
        {"match": [{"gateways": ["mesh"], "uri": {"prefix": "/m"}}], "route": [dest("reviews")]},
    ]
    config = table([svc("reviews"), vs("r", ["reviews"], http, gateways=["ingress", "mesh"])])
    assert [r["match"] for r in route_dicts(config, f"{REVIEWS}:9080")] == [{"prefix": "/m"}]


def test_several_virtual_services_merge_in_order_with_catch_alls_last() -> None:
    resources = [
        svc("reviews"),
        dr("reviews", "v1", "v2", "v3"),
        vs("a", ["reviews"], [{"route": [dest("reviews", "v1")]}]),
        vs(
            "b",
            ["reviews"],
            [{"match": [{"uri": {"prefix": "/b"}}], "route": [dest("reviews", "v2")]}],
        ),
        vs("c", ["reviews"], [{"route": [dest("reviews", "v3")]}]),
    ]
    got = route_dicts(table(resources), f"{REVIEWS}:9080")
    assert [r["route"]["cluster"].split("|")[2] for r in got] == ["v2", "v1", "v3"]


def test_wildcard_virtual_service_covers_services_and_unregistered_hosts() -> None:
    entry = se("ext", ["api.example.com"], [{"number": 80, "name": "http", "protocol": "HTTP"}])
    resources = [
        entry,
        svc("reviews"),
        vs("wide", ["*.com"], [{"directResponse": {"status": 404}}]),
        vs("narrow", ["*.example.com"], [{"directResponse": {"status": 418}}]),
        vs("other", ["*.example.org"], [{"route": [dest("reviews")]}]),
        vs("plain", ["legacy.example.net"], [{"route": [dest("reviews")]}]),
    ]
    config = table(resources)
    assert route_dicts(config, "api.example.com:80")[0]["direct_response"] == {"status": 418}
    assert list(vhost(config, "*.example.org:80").domains) == ["*.example.org", "*.example.org:80"]
    assert list(vhost(config, "legacy.example.net:80").domains) == [
        "legacy.example.net",
        "legacy.example.net:80",
    ]
    assert route_dicts(config, "legacy.example.net:80")[0]["route"]["cluster"] == (
        f"outbound|9080||{REVIEWS}"
    )


def test_short_virtual_service_host_without_service_gets_name_forms() -> None:
    config = table([svc("reviews"), vs("r", ["ghost"], [{"route": [dest("reviews")]}])])
    domains = list(vhost(config, "ghost.default.svc.cluster.local:80").domains)
    assert domains[:2] == ["ghost", "ghost:80"]


def test_gateway_proxies_get_no_sidecar_table() -> None:
    snap = build_snapshot([svc("reviews")])
    assert routes.route_configs(snap, Proxy(id="gw", kind="gateway")) == []


def test_every_table_passes_envoy_validate(tmp_path: Path) -> None:
    everything = table(
        [
            svc("reviews"),
            svc("web", 80, 8080),
            dr("reviews", "v1", "v2"),
            vs(
                "r",
                ["reviews"],
                [
                    {
                        "match": [
                            {
                                "uri": {"regex": "^/r/[0-9]+$"},
                                "headers": {"a": {"prefix": "b"}},
                                "withoutHeaders": {"c": {"exact": "d"}},
                                "queryParams": {"q": {}},
                                "ignoreUriCase": True,
                            }
                        ],
                        "route": [dest("reviews", "v2")],
                    },
                    {"route": [dest("reviews", "v1")]},
                ],
            ),
        ]
    )
    configs = [everything, *BUILT]
    bootstrap = static_bootstrap(
        configs, listen_ports=[20000 + i for i in range(len(configs))], admin_port=0
    )
    envoy_validate(bootstrap, tmp_path)
