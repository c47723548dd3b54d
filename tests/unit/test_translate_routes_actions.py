"""Route actions and policies: splits, redirect, rewrite, direct response, fault, timeout,
retries, mirror, CORS, header operations, consistent hashing and delegation."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from amimesh.resources.meta import Resource
from tests.unit.test_translate_routes_support import (
    BUILT,
    DEFAULT_RETRY,
    REVIEWS,
    dest,
    dr,
    envoy_validate,
    route_dicts,
    static_bootstrap,
    svc,
    table,
    vs,
)

V1 = f"outbound|9080|v1|{REVIEWS}"
V2 = f"outbound|9080|v2|{REVIEWS}"
RATINGS = "ratings.default.svc.cluster.local"
TYPE = "type.googleapis.com/"


def routes_of(*http: dict[str, Any], extra: list[Resource] | None = None) -> list[dict[str, Any]]:
    """The reviews virtual host's routes for a VirtualService with `http` routes."""
    resources = [
        svc("reviews"),
        svc("ratings"),
        dr("reviews", "v1", "v2"),
        vs("reviews", ["reviews"], list(http)),
        *(extra or []),
    ]
    return route_dicts(table(resources), f"{REVIEWS}:9080")


def only(*http: dict[str, Any], extra: list[Resource] | None = None) -> dict[str, Any]:
    [route] = routes_of(*http, extra=extra)
    return route


def test_weighted_split_with_subsets_and_per_destination_headers() -> None:
    headers = {"request": {"set": {"x-canary": "1"}}, "response": {"remove": ["x-internal"]}}
    route = only(
        {
            "route": [
                dest("reviews", "v1", 80),
                dest("reviews", "v2", 20, headers=headers),
                dest("reviews", "v2", 0),
            ]
        }
    )
    assert route["route"]["weighted_clusters"] == {
        "clusters": [
            {"name": V1, "weight": 80},
            {
                "name": V2,
                "weight": 20,
                "request_headers_to_add": [
                    {
                        "header": {"key": "x-canary", "value": "1"},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    }
                ],
                "response_headers_to_remove": ["x-internal"],
            },
        ]
    }


def test_unknown_destinations_are_never_routed_to() -> None:
    split = only({"route": [dest("reviews", "v1", 50), dest("reviews", "v9", 50)]})
    assert split["route"]["cluster"] == V1
    nothing = only({"route": [dest("nowhere"), dest("reviews", port=1234)]})
    assert nothing["direct_response"] == {
        "status": 503,
        "body": {"inline_string": "no destination of this route is known to the mesh\n"},
    }
    assert "route" not in nothing


def test_redirect() -> None:
    route = only(
        {
            "redirect": {
                "uri": "/v2/login",
                "authority": "auth.example.com",
                "port": 8443,
                "scheme": "https",
            }
        }
    )
    assert route["redirect"] == {
        "path_redirect": "/v2/login",
        "host_redirect": "auth.example.com",
        "scheme_redirect": "https",
        "port_redirect": 8443,
    }  # response_code MOVED_PERMANENTLY (301) is the proto default, so not printed
    found = only({"redirect": {"uri": "/x", "port": 80, "redirectCode": 302}})
    assert found["redirect"] == {"path_redirect": "/x", "response_code": "FOUND"}


def test_redirect_code_envoy_cannot_send_leaves_the_route_out() -> None:
    got = routes_of({"redirect": {"uri": "/x", "redirectCode": 300}})
    assert [r["name"] for r in got] == ["default"]


def test_rewrite_prefix_regex_and_authority() -> None:
    got = routes_of(
        {
            "match": [{"uri": {"prefix": "/old/"}}],
            "rewrite": {"uri": "/new/", "authority": "reviews.internal"},
            "route": [dest("reviews", "v1")],
        },
        {
            "match": [{"uri": {"regex": "^/id/([0-9]+)$"}}],
            "rewrite": {"uriRegexRewrite": {"match": "^/id/([0-9]+)$", "rewrite": "/items/\\1"}},
            "route": [dest("reviews", "v1")],
        },
        {
            "headers": {"request": {"set": {"host": "from-header"}}},
            "route": [dest("reviews", "v1")],
        },
    )
    assert got[0]["route"]["prefix_rewrite"] == "/new/"
    assert got[0]["route"]["host_rewrite_literal"] == "reviews.internal"
    assert got[1]["route"]["regex_rewrite"] == {
        "pattern": {"regex": "^/id/([0-9]+)$"},
        "substitution": "/items/\\1",
    }
    assert got[2]["route"]["host_rewrite_literal"] == "from-header"
    assert "request_headers_to_add" not in got[2]


def test_direct_response_string_and_bytes() -> None:
    got = routes_of(
        {
            "match": [{"uri": {"exact": "/s"}}],
            "directResponse": {"status": 418, "body": {"string": "tea"}},
        },
        {
            "match": [{"uri": {"exact": "/b"}}],
            "directResponse": {
                "status": 200,
                "body": {"bytes": base64.b64encode(b"\x00\x01").decode()},
            },
        },
        {"directResponse": {"status": 204}},
    )
    assert [r["direct_response"] for r in got] == [
        {"status": 418, "body": {"inline_string": "tea"}},
        {"status": 200, "body": {"inline_bytes": base64.b64encode(b"\x00\x01").decode()}},
        {"status": 204},
    ]


def test_fault_injection_is_per_route_fault_filter_config() -> None:
    route = only(
        {
            "fault": {
                "delay": {"fixedDelay": "1.5s", "percentage": {"value": 0.1}},
                "abort": {"httpStatus": 503, "percentage": {"value": 50}},
            },
            "route": [dest("reviews", "v1")],
        }
    )
    assert route["typed_per_filter_config"] == {
        "envoy.filters.http.fault": {
            "@type": TYPE + "envoy.extensions.filters.http.fault.v3.HTTPFault",
            "delay": {
                "fixed_delay": "1.500s",
                "percentage": {"numerator": 1000, "denominator": "MILLION"},
            },
            "abort": {
                "http_status": 503,
                "percentage": {"numerator": 500000, "denominator": "MILLION"},
            },
        }
    }


def test_fault_without_percentage_applies_to_every_request() -> None:
    route = only(
        {
            "fault": {
                "delay": {"fixedDelay": "2s", "percent": 30},
                "abort": {"grpcStatus": "UNAVAILABLE"},
            },
            "route": [dest("reviews", "v1")],
        }
    )
    fault = route["typed_per_filter_config"]["envoy.filters.http.fault"]
    assert fault["delay"] == {"fixed_delay": "2s", "percentage": {"numerator": 30}}
    assert fault["abort"] == {"grpc_status": 14, "percentage": {"numerator": 100}}


def test_timeout_and_retries() -> None:
    got = routes_of(
        {
            "match": [{"uri": {"prefix": "/a"}}],
            "timeout": "1.5s",
            "retries": {"attempts": 3, "perTryTimeout": "0.5s", "retryOn": "5xx,gateway-error,429"},
            "route": [dest("reviews", "v1")],
        },
        {
            "match": [{"uri": {"prefix": "/b"}}],
            "retries": {"attempts": 0},
            "route": [dest("reviews", "v1")],
        },
        {
            "retries": {"attempts": 4, "retryRemoteLocalities": True},
            "route": [dest("reviews", "v1")],
        },
    )
    assert got[0]["route"]["timeout"] == "1.500s"
    assert got[0]["route"]["retry_policy"] == {
        **DEFAULT_RETRY,
        "retry_on": "5xx,gateway-error,retriable-status-codes",
        "num_retries": 3,
        "per_try_timeout": "0.500s",
        "retriable_status_codes": [429],
    }
    assert got[1]["route"]["timeout"] == "0s"
    assert "retry_policy" not in got[1]["route"]
    assert got[2]["route"]["retry_policy"] == {
        **DEFAULT_RETRY,
        "num_retries": 4,
        "retry_priority": {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": {
                "@type": TYPE
                + "envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                "update_frequency": 2,
            },
        },
    }


def test_mirror_and_its_percentage() -> None:
    got = routes_of(
        {
            "match": [{"uri": {"prefix": "/a"}}],
            "mirror": {"host": "ratings"},
            "route": [dest("reviews", "v1")],
        },
        {
            "match": [{"uri": {"prefix": "/b"}}],
            "mirror": {"host": "reviews", "subset": "v2"},
            "mirrorPercentage": {"value": 12.5},
            "route": [dest("reviews", "v1")],
        },
        {
            "match": [{"uri": {"prefix": "/c"}}],
            "mirror": {"host": "ratings"},
            "mirrorPercent": 10,
            "route": [dest("reviews", "v1")],
        },
        {
            "match": [{"uri": {"prefix": "/d"}}],
            "mirror": {"host": "ratings"},
            "mirrorPercentage": {"value": 0},
            "route": [dest("reviews", "v1")],
        },
        {"mirror": {"host": "nowhere"}, "route": [dest("reviews", "v1")]},
    )
    mirrors = [r["route"].get("request_mirror_policies") for r in got]
    assert mirrors == [
        [
            {
                "cluster": f"outbound|9080||{RATINGS}",
                "runtime_fraction": {"default_value": {"numerator": 100}},
                "trace_sampled": False,
            }
        ],
        [
            {
                "cluster": V2,
                "runtime_fraction": {
                    "default_value": {"numerator": 125000, "denominator": "MILLION"}
                },
                "trace_sampled": False,
            }
        ],
        [
            {
                "cluster": f"outbound|9080||{RATINGS}",
                "runtime_fraction": {"default_value": {"numerator": 10}},
                "trace_sampled": False,
            }
        ],
        None,
        None,
    ]


def test_cors_policy_is_per_route_cors_filter_config() -> None:
    route = only(
        {
            "corsPolicy": {
                "allowOrigins": [
                    {"exact": "https://a.example"},
                    {"regex": "https://.*\\.b\\.example"},
                ],
                "allowMethods": ["GET", "POST"],
                "allowHeaders": ["x-token", "content-type"],
                "exposeHeaders": ["x-trace"],
                "maxAge": "24h",
                "allowCredentials": True,
            },
            "route": [dest("reviews", "v1")],
        }
    )
    assert route["typed_per_filter_config"] == {
        "envoy.filters.http.cors": {
            "@type": TYPE + "envoy.extensions.filters.http.cors.v3.CorsPolicy",
            "allow_origin_string_match": [
                {"exact": "https://a.example"},
                {"safe_regex": {"regex": "https://.*\\.b\\.example"}},
            ],
            "allow_methods": "GET,POST",
            "allow_headers": "x-token,content-type",
            "expose_headers": "x-trace",
            "max_age": "86400",
            "allow_credentials": True,
            "filter_enabled": {"default_value": {"numerator": 100}},
            "forward_not_matching_preflights": True,
        }
    }
    legacy = only({"corsPolicy": {"allowOrigin": ["*"]}, "route": [dest("reviews", "v1")]})
    cors = legacy["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert cors["allow_origin_string_match"] == [{"exact": "*"}]


def test_header_operations() -> None:
    route = only(
        {
            "headers": {
                "request": {
                    "set": {"x-b": "2", "x-a": "1"},
                    "add": {"x-c": "3"},
                    "remove": ["x-drop", ":path"],
                },
                "response": {"set": {"x-mesh": "ami"}, "add": {"x-d": "4"}, "remove": ["server"]},
            },
            "route": [dest("reviews", "v1", headers={"request": {"add": {"x-dest": "v1"}}})],
        }
    )

    def hv(key: str, value: str, action: str) -> dict[str, Any]:
        out: dict[str, Any] = {"header": {"key": key, "value": value}}
        if action != append:  # APPEND_IF_EXISTS_OR_ADD is the proto default: not printed
            out["append_action"] = action
        return out

    overwrite, append = "OVERWRITE_IF_EXISTS_OR_ADD", "APPEND_IF_EXISTS_OR_ADD"
    assert route["request_headers_to_add"] == [
        hv("x-a", "1", overwrite),
        hv("x-b", "2", overwrite),
        hv("x-c", "3", append),
        hv("x-dest", "v1", append),  # a single destination's headers join the route's
    ]
    assert route["request_headers_to_remove"] == ["x-drop"]
    assert route["response_headers_to_add"] == [
        hv("x-mesh", "ami", overwrite),
        hv("x-d", "4", append),
    ]
    assert route["response_headers_to_remove"] == ["server"]


def test_consistent_hash_from_destination_rule() -> None:
    rule = dr(
        "ratings",
        "v1",
        trafficPolicy={"loadBalancer": {"consistentHash": {"httpHeaderName": "x-user"}}},
    )
    cookie = dr(
        "reviews",
        "v1",
        "v2",
        trafficPolicy={
            "loadBalancer": {"consistentHash": {"httpCookie": {"name": "s", "ttl": "60s"}}}
        },
    )
    resources = [svc("reviews"), svc("ratings"), rule, cookie]
    got = route_dicts(table(resources), f"{RATINGS}:9080")
    assert got[0]["route"]["hash_policy"] == [{"header": {"header_name": "x-user"}}]
    # Retries stay on the hashed host: no "previous hosts" predicate.
    assert "retry_host_predicate" not in got[0]["route"]["retry_policy"]
    reviews = route_dicts(table(resources), f"{REVIEWS}:9080")
    assert reviews[0]["route"]["hash_policy"] == [{"cookie": {"name": "s", "ttl": "60s"}}]


def test_delegate_routes_merge_with_the_root_match() -> None:
    root = vs(
        "root",
        ["reviews"],
        [
            {
                "name": "api",
                "match": [{"uri": {"prefix": "/api"}, "headers": {"x-team": {"exact": "a"}}}],
                "delegate": {"name": "child"},
                "timeout": "3s",
            },
            {"route": [dest("reviews", "v1")]},
        ],
    )
    child = vs(
        "child",
        [],
        [
            {
                "name": "v2",
                "match": [{"uri": {"prefix": "/api/v2"}}],
                "route": [dest("reviews", "v2")],
            },
            {
                "name": "outside",
                "match": [{"uri": {"prefix": "/other"}}],
                "route": [dest("reviews", "v2")],
            },
            {"name": "any", "route": [dest("reviews", "v1")], "timeout": "1s"},
        ],
    )
    config = table([svc("reviews"), dr("reviews", "v1", "v2"), root, child])
    got = route_dicts(config, f"{REVIEWS}:9080")
    team = [{"name": "x-team", "string_match": {"exact": "a"}}]
    assert [
        (r.get("name"), r["match"], r["route"]["cluster"], r["route"]["timeout"]) for r in got
    ] == [
        ("api-v2", {"prefix": "/api/v2", "headers": team}, V2, "3s"),
        ("api-any", {"prefix": "/api", "headers": team}, V1, "1s"),
        (None, {"prefix": "/"}, V1, "0s"),
    ]


def test_delegate_missing_or_not_exported_gives_no_routes() -> None:
    root = vs(
        "root",
        ["reviews"],
        [
            {"match": [{"uri": {"prefix": "/a"}}], "delegate": {"name": "missing"}},
            {
                "match": [{"uri": {"prefix": "/b"}}],
                "delegate": {"name": "hidden", "namespace": "other"},
            },
        ],
    )
    hidden = vs("hidden", [], [{"route": [dest("reviews.default")]}], ns="other", exportTo=["."])
    got = route_dicts(table([svc("reviews"), root, hidden]), f"{REVIEWS}:9080")
    assert [r["name"] for r in got] == ["default"]


def test_every_table_passes_envoy_validate(tmp_path: Path) -> None:
    configs = list(BUILT)
    bootstrap = static_bootstrap(
        configs, listen_ports=[21000 + i for i in range(len(configs))], admin_port=0
    )
    envoy_validate(bootstrap, tmp_path)
