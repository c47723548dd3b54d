"""The Gateway API's conversion into Istio Gateways and VirtualServices, and its status
(pure; the traffic itself is tests/e2e/test_gateway_api.py)."""

from __future__ import annotations

from typing import Any

import pytest

from amimesh.gatewayapi import hostnames
from amimesh.gatewayapi.convert import Conversion, convert
from amimesh.resources import parse_documents, parse_object

BASE = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: team}
spec: {selector: {app: other}, ports: [{name: http, port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - name: web
    hostname: "*.example.com"
    port: 80
    protocol: HTTP
    allowedRoutes: {namespaces: {from: All}}
  - name: same
    port: 81
    protocol: HTTP
  - name: picked
    port: 82
    protocol: HTTP
    allowedRoutes:
      namespaces: {from: Selector, selector: {matchLabels: {kubernetes.io/metadata.name: team}}}
  - name: tcp
    port: 9000
    protocol: TCP
"""


def run(text: str) -> Conversion:
    parsed = parse_documents(BASE + "---" + text, "test.yaml")
    assert not parsed.errors, [str(e) for e in parsed.errors]
    out = convert(parsed.resources, now="2026-01-01T00:00:00Z")
    # Whatever the conversion makes is valid mesh config.
    derived = parse_object({"apiVersion": "v1", "kind": "List", "items": out.derived}, "x")
    assert not derived.errors, [str(e) for e in derived.errors]
    return out


def virtual_service(out: Conversion, name: str) -> dict[str, Any]:
    [found] = [
        d for d in out.derived if d["kind"] == "VirtualService" and d["metadata"]["name"] == name
    ]
    return found


def parent_conditions(out: Conversion, route: str, ns: str = "default") -> list[dict[str, str]]:
    status = out.status[("HTTPRoute", ns, route)]
    return [
        {c["type"]: f"{c['status']}/{c['reason']}" for c in p["conditions"]}
        for p in status["parents"]
    ]


def route(name: str, body: str, ns: str = "default") -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}}}
spec:
{body}
"""


def test_each_served_listener_is_an_istio_gateway() -> None:
    out = run("")
    gateways = {d["metadata"]["name"]: d for d in out.derived if d["kind"] == "Gateway"}
    assert set(gateways) == {"gw-gwapi-web", "gw-gwapi-same", "gw-gwapi-picked", "gw-gwapi-tcp"}
    server = gateways["gw-gwapi-web"]["spec"]["servers"][0]
    assert server == {
        "port": {"number": 80, "name": "web", "protocol": "HTTP"},
        "hosts": ["*.example.com"],
    }
    assert gateways["gw-gwapi-web"]["spec"]["selector"] == {"istio": "ingressgateway"}
    assert gateways["gw-gwapi-tcp"]["spec"]["servers"] == [
        {"port": {"number": 9000, "name": "tcp", "protocol": "TCP"}, "hosts": ["*"]}
    ]
    status = out.status[("Gateway.gateway.networking.k8s.io", "infra", "gw")]
    tcp = next(x for x in status["listeners"] if x["name"] == "tcp")
    assert [(c["type"], c["status"], c["reason"]) for c in tcp["conditions"]][:3] == [
        ("Accepted", "True", "Accepted"),
        ("Conflicted", "False", "NoConflicts"),
        ("Programmed", "True", "Programmed"),
    ]
    assert tcp["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "TCPRoute"}]


def test_a_gateway_of_another_class_is_left_alone() -> None:
    out = run(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs}
spec:
  gatewayClassName: someone-else
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
"""
        + route(
            "r", "  parentRefs: [{name: theirs}]\n  rules: [{backendRefs: [{name: web, port: 80}]}]"
        )
    )
    assert ("Gateway.gateway.networking.k8s.io", "default", "theirs") not in out.status
    assert out.status[("HTTPRoute", "default", "r")] == {"parents": []}
    assert [d for d in out.derived if d["kind"] == "VirtualService"] == []


def test_allowed_routes_namespaces_and_section_names() -> None:
    body = (
        "  parentRefs: [{name: gw, namespace: infra, sectionName: %s}]\n"
        "  rules: [{backendRefs: [{name: web, port: 80}]}]"
    )
    out = run(
        route("all", body % "web")
        + "---"
        + route("same", body % "same")
        + "---"
        + route("picked", body % "picked")
        + "---"
        + route("team-picked", body.replace("name: web", "name: other") % "picked", ns="team")
        + "---"
        + route("missing", body % "nope")
    )
    assert parent_conditions(out, "all")[0]["Accepted"] == "True/Accepted"
    assert parent_conditions(out, "same")[0]["Accepted"] == "False/NotAllowedByListeners"
    assert parent_conditions(out, "picked")[0]["Accepted"] == "False/NotAllowedByListeners"
    assert parent_conditions(out, "team-picked", "team")[0]["Accepted"] == "True/Accepted"
    assert parent_conditions(out, "missing")[0]["Accepted"] == "False/NoMatchingParent"


def test_hostnames_must_meet_the_listener() -> None:
    body = (
        "  parentRefs: [{name: gw, namespace: infra, sectionName: web}]\n"
        "  hostnames: [%s]\n"
        "  rules: [{backendRefs: [{name: web, port: 80}]}]"
    )
    out = run(
        route("inside", body % "a.example.com") + "---" + route("outside", body % "a.example.org")
    )
    assert parent_conditions(out, "outside")[0]["Accepted"] == "False/NoMatchingListenerHostname"
    vs = virtual_service(out, "gw-gwapi-web-a.example.com")
    assert vs["spec"]["hosts"] == ["a.example.com"]
    assert vs["spec"]["gateways"] == ["infra/gw-gwapi-web"]
    assert vs["metadata"]["namespace"] == "infra"


@pytest.mark.parametrize(
    ("listener", "route_hosts", "served"),
    [
        (None, [], ["*"]),
        (None, ["a.com"], ["a.com"]),
        ("*.example.com", [], ["*.example.com"]),
        ("*.example.com", ["a.example.com", "b.other.com"], ["a.example.com"]),
        ("*.example.com", ["a.b.example.com"], ["a.b.example.com"]),
        ("a.example.com", ["*.example.com"], ["a.example.com"]),
        ("*.example.com", ["example.com"], []),
        ("a.example.com", ["A.example.com"], ["a.example.com"]),
    ],
)
def test_hostname_intersection(
    listener: str | None, route_hosts: list[str], served: list[str]
) -> None:
    assert hostnames.intersect(listener, route_hosts) == served


def test_precedence_across_rules_and_routes() -> None:
    parent = (
        "  parentRefs: [{name: gw, namespace: infra, sectionName: web}]\n"
        "  hostnames: [a.example.com]\n"
    )
    first = route(
        "first",
        parent
        + """  rules:
  - backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /a/b}, headers: [{name: X-H, value: "1"}]}]
    backendRefs: [{name: web, port: 80}]
""",
    )
    second = route(
        "second",
        parent
        + """  rules:
  - matches: [{path: {type: Exact, value: /a}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /a/b}, method: GET}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /a}, queryParams: [{name: q, value: x}]}]
    backendRefs: [{name: web, port: 80}]
""",
    )
    out = run(first + "---" + second)
    http = virtual_service(out, "gw-gwapi-web-a.example.com")["spec"]["http"]
    order = [
        (
            next(iter(m["uri"].items())),
            "method" in m,
            len(m.get("headers", {})),
            len(m.get("queryParams", {})),
        )
        for r in http
        for m in r["match"]
    ]
    assert order == [
        (("exact", "/a"), False, 0, 0),  # Exact first
        (("exact", "/a/b"), True, 0, 0),  # then the longest prefix; method before headers
        (("prefix", "/a/b/"), True, 0, 0),
        (("exact", "/a/b"), False, 1, 0),
        (("prefix", "/a/b/"), False, 1, 0),
        (("exact", "/a"), False, 0, 1),  # query params first among equal prefixes
        (("prefix", "/a/"), False, 0, 1),
        (("exact", "/a"), False, 0, 0),
        (("prefix", "/a/"), False, 0, 0),
        (("prefix", "/"), False, 0, 0),  # the catch-all last
    ]


def test_filters_become_the_routes_fields() -> None:
    out = run(
        route(
            "r",
            """  parentRefs: [{name: gw, namespace: infra, sectionName: web}]
  hostnames: [a.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old/}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: new.example.com
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-A, value: "50%"}], remove: [X-B]}
    - type: RequestMirror
      requestMirror: {backendRef: {name: web, port: 80}, fraction: {numerator: 1, denominator: 4}}
    backendRefs: [{name: web, port: 80, weight: 3}]
    timeouts: {request: 10s, backendRequest: 2s}
    retry: {attempts: 3, codes: [503, 502]}
  - matches: [{path: {type: Exact, value: /go}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        path: {type: ReplaceFullPath, replaceFullPath: /gone}
        statusCode: 308
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /x}}
    backendRefs: [{name: web, port: 80}]
""",
        )
    )
    http = virtual_service(out, "gw-gwapi-web-a.example.com")["spec"]["http"]
    by_uri = {next(iter(r["match"][0]["uri"].values())): r for r in http}
    exact, prefix = by_uri["/old"], by_uri["/old/"]
    assert exact["rewrite"] == {"authority": "new.example.com", "uri": "/new"}
    assert prefix["rewrite"] == {"authority": "new.example.com", "uri": "/new/"}
    assert prefix["headers"]["request"] == {"set": {"x-a": "50%%"}, "remove": ["x-b"]}
    assert prefix["mirror"] == {"host": "web.default.svc.cluster.local", "port": {"number": 80}}
    assert prefix["mirrorPercentage"] == {"value": 25.0}
    assert prefix["route"] == [
        {
            "destination": {"host": "web.default.svc.cluster.local", "port": {"number": 80}},
            "weight": 3,
        }
    ]
    assert prefix["timeout"] == "10.0s"
    assert prefix["retries"] == {"attempts": 3, "retryOn": "503,502", "perTryTimeout": "2.0s"}
    assert by_uri["/go"]["redirect"] == {"redirectCode": 308, "scheme": "https", "uri": "/gone"}
    assert "route" not in by_uri["/go"]
    assert by_uri["/full/"]["rewrite"] == {"uriRegexRewrite": {"match": "^.*$", "rewrite": "/x"}}


def test_cross_namespace_backends_need_a_grant() -> None:
    body = """  parentRefs: [{name: gw, namespace: infra, sectionName: web}]
  rules: [{backendRefs: [{name: other, namespace: team, port: 80}]}]"""
    refused = run(route("r", body))
    assert parent_conditions(refused, "r")[0]["ResolvedRefs"] == "False/RefNotPermitted"
    [rule] = virtual_service(refused, "gw-gwapi-web-wildcard.example.com")["spec"]["http"]
    assert rule["directResponse"] == {"status": 500}
    grant = """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: team}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
---
"""
    allowed = run(grant + route("r", body))
    assert parent_conditions(allowed, "r")[0]["ResolvedRefs"] == "True/ResolvedRefs"
    [rule] = virtual_service(allowed, "gw-gwapi-web-wildcard.example.com")["spec"]["http"]
    assert rule["route"][0]["destination"]["host"] == "other.team.svc.cluster.local"
    # A grant for another kind of route does not count.
    other_kind = run(grant.replace("kind: HTTPRoute", "kind: GRPCRoute") + route("r", body))
    assert parent_conditions(other_kind, "r")[0]["ResolvedRefs"] == "False/RefNotPermitted"


def test_a_missing_backend_is_named() -> None:
    out = run(
        route(
            "r",
            "  parentRefs: [{name: gw, namespace: infra, sectionName: web}]\n"
            "  rules: [{backendRefs: [{name: web, port: 80}, {name: gone, port: 80}]}]",
        )
    )
    assert parent_conditions(out, "r")[0]["ResolvedRefs"] == "False/BackendNotFound"
    [rule] = virtual_service(out, "gw-gwapi-web-wildcard.example.com")["spec"]["http"]
    assert [r["destination"]["host"] for r in rule["route"]] == ["web.default.svc.cluster.local"]


def test_mesh_routes_producer_and_consumer() -> None:
    body = (
        "  parentRefs: [{group: '', kind: Service, name: web, namespace: default, port: 80}]\n"
        "  rules: [{backendRefs: [{name: web, namespace: default, port: 80}]}]"
    )
    grant = """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: team}]
  to: [{group: "", kind: Service}]
---
"""
    out = run(grant + route("producer", body) + "---" + route("consumer", body, ns="team"))
    producer = virtual_service(out, "web-gwapi-mesh")
    assert producer["metadata"]["namespace"] == "default"
    assert producer["spec"]["hosts"] == ["web.default.svc.cluster.local"]
    assert producer["spec"]["exportTo"] == ["*"]
    assert producer["spec"]["http"][0]["match"][0]["port"] == 80
    consumer = virtual_service(out, "web-default-gwapi-mesh")
    assert consumer["metadata"]["namespace"] == "team"
    assert consumer["spec"]["exportTo"] == ["."]
    missing = run(
        route("r", body.replace("name: web, namespace: default, port: 80}]\n", "name: nope}]\n", 1))
    )
    assert parent_conditions(missing, "r")[0]["Accepted"] == "False/NoMatchingParent"


def test_grpc_route_methods() -> None:
    out = run(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: web}]
  hostnames: [grpc.example.com]
  rules:
  - matches:
    - method: {service: helloworld.Greeter, method: SayHello}
    - method: {service: helloworld.Greeter}
      headers: [{name: X-A, value: b}]
    backendRefs: [{name: web, port: 80}]
"""
    )
    http = virtual_service(out, "gw-gwapi-web-grpc.example.com")["spec"]["http"]
    assert [r["match"][0]["uri"] for r in http] == [
        {"exact": "/helloworld.Greeter/SayHello"},
        {"prefix": "/helloworld.Greeter/"},
    ]
    assert (
        out.status[("GRPCRoute", "default", "g")]["parents"][0]["conditions"][0]["status"] == "True"
    )


L4_GATEWAY = """
apiVersion: v1
kind: Service
metadata: {name: db-a}
spec: {selector: {app: db-a}, ports: [{name: tcp, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: db-b}
spec: {selector: {app: db-b}, ports: [{name: tcp, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: tls-backend, namespace: team}
spec: {selector: {app: tls-backend}, ports: [{name: tls, port: 8443}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: l4, namespace: default}
spec:
  gatewayClassName: istio
  listeners:
  - {name: tcp, port: 9100, protocol: TCP}
  - name: tls
    port: 9443
    protocol: TLS
    hostname: "*.example.com"
    tls: {mode: Passthrough}
    allowedRoutes: {namespaces: {from: All}}
  - name: tls-any
    port: 9444
    protocol: TLS
    tls: {mode: Passthrough}
  - name: terminate
    port: 9445
    protocol: TLS
    tls: {mode: Terminate, certificateRefs: [{name: cert}]}
"""


def stream_conditions(out: Conversion, kind: str, name: str, ns: str = "default") -> list[str]:
    [parent] = out.status[(kind, ns, name)]["parents"]
    return [f"{c['type']}/{c['status']}/{c['reason']}" for c in parent["conditions"]]


def listener_conditions(out: Conversion, gateway: str, ns: str = "default") -> dict[str, Any]:
    status = out.status[("Gateway.gateway.networking.k8s.io", ns, gateway)]
    return {
        x["name"]: {c["type"]: (c["status"], c["reason"]) for c in x["conditions"]}
        for x in status["listeners"]
    }


@pytest.mark.parametrize("version", ["v1alpha2", "v1alpha3", "v1"])
def test_tcp_route_on_a_tcp_listener_splits_by_weight(version: str) -> None:
    out = run(
        L4_GATEWAY
        + f"""---
apiVersion: gateway.networking.k8s.io/{version}
kind: TCPRoute
metadata: {{name: db}}
spec:
  parentRefs: [{{name: l4, sectionName: tcp}}]
  rules:
  - backendRefs:
    - {{name: db-a, port: 5432, weight: 3}}
    - {{name: db-b, port: 5432, weight: 1}}
    - {{name: db-c, port: 5432, weight: 1}}
    - {{name: db-b, port: 5432, weight: 0}}
"""
    )
    vs = virtual_service(out, "l4-gwapi-tcp-tcp")
    assert vs["spec"] == {
        "hosts": ["*"],
        "gateways": ["default/l4-gwapi-tcp"],
        "tcp": [
            {
                "route": [
                    {
                        "destination": {
                            "host": "db-a.default.svc.cluster.local",
                            "port": {"number": 5432},
                        },
                        "weight": 3,
                    },
                    {
                        "destination": {
                            "host": "db-b.default.svc.cluster.local",
                            "port": {"number": 5432},
                        },
                        "weight": 1,
                    },
                ]
            }
        ],
    }
    # db-c does not exist: named, and left out of the split.
    assert stream_conditions(out, "TCPRoute", "db") == [
        "Accepted/True/Accepted",
        "ResolvedRefs/False/BackendNotFound",
    ]
    assert listener_conditions(out, "l4")["tcp"]["Programmed"] == ("True", "Programmed")
    status = out.status[("Gateway.gateway.networking.k8s.io", "default", "l4")]
    assert {x["name"]: x["attachedRoutes"] for x in status["listeners"]}["tcp"] == 1


def test_tls_route_passthrough_by_sni_intersected_with_the_listener() -> None:
    out = run(
        L4_GATEWAY
        + """---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: secure, namespace: team}
spec:
  parentRefs: [{name: l4, namespace: default, sectionName: tls}]
  hostnames: [a.example.com, b.example.org]
  rules: [{backendRefs: [{name: tls-backend, port: 8443}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: elsewhere, namespace: team}
spec:
  parentRefs: [{name: l4, namespace: default, sectionName: tls}]
  hostnames: [a.example.org]
  rules: [{backendRefs: [{name: tls-backend, port: 8443}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: no-sni}
spec:
  parentRefs: [{name: l4, sectionName: tls-any}]
  rules: [{backendRefs: [{name: db-a, port: 5432}]}]
"""
    )
    gateways = {d["metadata"]["name"]: d for d in out.derived if d["kind"] == "Gateway"}
    assert gateways["l4-gwapi-tls"]["spec"]["servers"] == [
        {
            "port": {"number": 9443, "name": "tls", "protocol": "TLS"},
            "hosts": ["*.example.com"],
            "tls": {"mode": "PASSTHROUGH"},
        }
    ]
    vs = virtual_service(out, "l4-gwapi-tls-a.example.com")
    assert vs["metadata"]["namespace"] == "default"
    assert vs["spec"] == {
        "hosts": ["a.example.com"],
        "gateways": ["default/l4-gwapi-tls"],
        "tls": [
            {
                "match": [{"sniHosts": ["a.example.com"]}],
                "route": [
                    {
                        "destination": {
                            "host": "tls-backend.team.svc.cluster.local",
                            "port": {"number": 8443},
                        },
                        "weight": 1,
                    }
                ],
            }
        ],
    }
    assert stream_conditions(out, "TLSRoute", "secure", "team") == [
        "Accepted/True/Accepted",
        "ResolvedRefs/True/ResolvedRefs",
    ]
    assert stream_conditions(out, "TLSRoute", "elsewhere", "team")[0] == (
        "Accepted/False/NoMatchingListenerHostname"
    )
    # Neither the route nor the listener names a host: no SNI name to pass through by.
    assert stream_conditions(out, "TLSRoute", "no-sni")[0] == "Accepted/False/UnsupportedValue"
    # TLS terminated in front of TCP is not served, and says so.
    terminate = listener_conditions(out, "l4")["terminate"]
    assert terminate["Accepted"] == ("False", "UnsupportedValue")
    assert terminate["Programmed"] == ("False", "Invalid")


def test_stream_routes_backends_across_namespaces_need_a_grant() -> None:
    route_text = """
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: far}
spec:
  parentRefs: [{name: l4, sectionName: tcp}]
  rules: [{backendRefs: [{name: tls-backend, namespace: team, port: 8443}]}]
"""
    out = run(L4_GATEWAY + "---" + route_text)
    assert stream_conditions(out, "TCPRoute", "far")[1] == "ResolvedRefs/False/RefNotPermitted"
    # No backend left: no route, so the gateway takes no connection.
    assert not [d for d in out.derived if d["metadata"]["name"] == "l4-gwapi-tcp-tcp"]
    grant = """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: tcp-in, namespace: team}
spec:
  from: [{group: gateway.networking.k8s.io, kind: TCPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
"""
    out = run(L4_GATEWAY + "---" + route_text + "---" + grant)
    assert stream_conditions(out, "TCPRoute", "far")[1] == "ResolvedRefs/True/ResolvedRefs"
    vs = virtual_service(out, "l4-gwapi-tcp-tcp")
    [tcp] = vs["spec"]["tcp"]
    assert tcp["route"][0]["destination"]["host"] == "tls-backend.team.svc.cluster.local"


def test_route_kinds_follow_the_listener_protocol() -> None:
    out = run(
        L4_GATEWAY
        + """---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: to-tls}
spec:
  parentRefs: [{name: l4, sectionName: tls}]
  rules: [{backendRefs: [{name: db-a, port: 5432}]}]
---
"""
        + route(
            "to-tcp",
            "  parentRefs: [{name: l4, sectionName: tcp}]\n"
            "  rules: [{backendRefs: [{name: web, port: 80}]}]",
        )
    )
    assert stream_conditions(out, "TCPRoute", "to-tls")[0] == "Accepted/False/NotAllowedByListeners"
    assert parent_conditions(out, "to-tcp")[0]["Accepted"] == "False/NotAllowedByListeners"


def test_tcp_listeners_conflict_on_one_port() -> None:
    out = run(
        L4_GATEWAY
        + """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: zz-later, namespace: default}
spec:
  gatewayClassName: istio
  listeners:
  - {name: tcp-again, port: 9100, protocol: TCP}
  - {name: http-on-tls, port: 9443, protocol: HTTP}
  - name: tls-b
    port: 9443
    protocol: TLS
    hostname: b.example.net
    tls: {mode: Passthrough}
"""
    )
    later = listener_conditions(out, "zz-later")
    assert later["tcp-again"]["Conflicted"] == ("True", "HostnameConflict")
    assert later["http-on-tls"]["Conflicted"] == ("True", "ProtocolConflict")
    assert later["tls-b"]["Programmed"] == ("True", "Programmed")


def test_mesh_tcp_route_on_a_service() -> None:
    out = run(
        L4_GATEWAY
        + """---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db-split}
spec:
  parentRefs: [{group: "", kind: Service, name: db-a, port: 5432}]
  rules:
  - backendRefs:
    - {name: db-a, port: 5432, weight: 9}
    - {name: db-b, port: 5432, weight: 1}
"""
    )
    assert stream_conditions(out, "TCPRoute", "db-split")[0] == "Accepted/True/Accepted"
    vs = virtual_service(out, "db-a-gwapi-mesh-tcp")
    assert vs["spec"]["hosts"] == ["db-a.default.svc.cluster.local"]
    assert vs["spec"]["exportTo"] == ["*"]
    [tcp] = vs["spec"]["tcp"]
    assert tcp["match"] == [{"port": 5432}]
    assert [d["weight"] for d in tcp["route"]] == [9, 1]


def test_hbone_and_waypoints_are_accepted_and_not_programmed() -> None:
    out = run(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge-hbone}
spec:
  gatewayClassName: istio
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
"""
    )
    for name in ("waypoint", "edge-hbone"):
        mesh = listener_conditions(out, name)["mesh"]
        assert mesh["Accepted"] == ("True", "Accepted")
        assert mesh["Programmed"] == ("False", "Invalid")
        status = out.status[("Gateway.gateway.networking.k8s.io", "default", name)]
        [programmed] = [c for c in status["conditions"] if c["type"] == "Programmed"]
        assert programmed["status"] == "False"
        assert "ambient" in programmed["message"]
    assert not [
        d for d in out.derived if d["metadata"]["name"].startswith(("waypoint", "edge-hbone"))
    ]


def test_https_certificate_refs_across_namespaces_need_a_grant() -> None:
    gateway = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls}
spec:
  gatewayClassName: ami
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    tls: {certificateRefs: [{name: cert, namespace: certs}]}
"""
    refused = run(gateway)
    status = refused.status[("Gateway.gateway.networking.k8s.io", "default", "tls")]
    conditions = {c["type"]: c["reason"] for c in status["listeners"][0]["conditions"]}
    assert conditions["ResolvedRefs"] == "RefNotPermitted"
    assert conditions["Programmed"] == "Invalid"
    grant = """
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: default}]
  to: [{group: "", kind: Secret, name: cert}]
"""
    allowed = run(gateway + grant)
    [server] = next(d for d in allowed.derived if d["metadata"]["name"] == "tls-gwapi-https")[
        "spec"
    ]["servers"]
    assert server["tls"] == {"mode": "SIMPLE", "credentialName": "cert"}


def test_listeners_that_conflict_on_the_shared_gateway_are_not_programmed() -> None:
    out = run(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: later, namespace: zz}
spec:
  gatewayClassName: istio
  listeners:
  - {name: tls-on-80, port: 80, protocol: HTTPS, tls: TLS}
  - {name: a, port: 443, protocol: HTTPS, hostname: a.example.com, tls: TLS}
  - {name: a-again, port: 443, protocol: HTTPS, hostname: a.example.com, tls: TLS}
  - {name: b, port: 443, protocol: HTTPS, hostname: b.example.com, tls: TLS}
""".replace("TLS}", "{certificateRefs: [{name: c}]}}")
    )
    status = out.status[("Gateway.gateway.networking.k8s.io", "zz", "later")]
    reasons = {
        x["name"]: {c["type"]: (c["status"], c["reason"]) for c in x["conditions"]}
        for x in status["listeners"]
    }
    assert reasons["tls-on-80"]["Conflicted"] == ("True", "ProtocolConflict")
    assert reasons["tls-on-80"]["Programmed"] == ("False", "Invalid")
    assert reasons["a"]["Conflicted"] == ("False", "NoConflicts")
    assert reasons["a-again"]["Conflicted"] == ("True", "HostnameConflict")
    assert reasons["b"]["Programmed"] == ("True", "Programmed")
    served = {d["metadata"]["name"] for d in out.derived if d["kind"] == "Gateway"}
    assert {"later-gwapi-a", "later-gwapi-b"} <= served
    assert not {"later-gwapi-tls-on-80", "later-gwapi-a-again"} & served


def test_a_prefix_redirect_is_marked_for_the_translator() -> None:
    from amimesh.gatewayapi import http
    from amimesh.translate import route_action

    assert http.PREFIX_MARKER == route_action.PREFIX_MARKER
    assert http.ROUTE_SEMANTICS == {route_action.ROUTE_SEMANTICS: route_action.GATEWAY_API}
    out = run(
        route(
            "r",
            """  parentRefs: [{name: gw, namespace: infra, sectionName: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}
""",
        )
    )
    vs = virtual_service(out, "gw-gwapi-web-wildcard.example.com")
    assert vs["metadata"]["annotations"] == http.ROUTE_SEMANTICS
    assert [r["redirect"]["uri"] for r in vs["spec"]["http"]] == ["%PREFIX()%/b", "%PREFIX()%/b/"]


def test_istio_bookinfo_samples() -> None:
    from pathlib import Path

    text = (Path(__file__).parent / "testdata/gateway-api/istio-bookinfo.yaml").read_text()
    parsed = parse_documents(text, "istio-bookinfo.yaml")
    assert not parsed.errors, [str(e) for e in parsed.errors]
    out = convert(parsed.resources, now="T")
    for route_name in ("bookinfo", "reviews", "productpage"):
        [parent] = out.status[("HTTPRoute", "default", route_name)]["parents"]
        states = {c["type"]: c["status"] for c in parent["conditions"]}
        assert states == {"Accepted": "True", "ResolvedRefs": "True"}, (route_name, parent)
    edge = virtual_service(out, "bookinfo-gateway-gwapi-http-wildcard")
    assert [next(iter(r["match"][0]["uri"].items())) for r in edge["spec"]["http"]] == [
        ("exact", "/productpage"),
        ("exact", "/login"),
        ("exact", "/logout"),
        ("exact", "/api/v1/products"),
        ("prefix", "/api/v1/products/"),
        ("exact", "/static"),
        ("prefix", "/static/"),
    ]
    reviews = virtual_service(out, "reviews-gwapi-mesh")
    assert [d["weight"] for d in reviews["spec"]["http"][0]["route"]] == [90, 10]


def test_a_wildcard_routes_rules_apply_to_the_hosts_it_covers_after_theirs() -> None:
    parent = "  parentRefs: [{name: gw, namespace: infra, sectionName: web}]\n"
    rule = "  rules:\n  - matches: [{path: {type: Exact, value: %s}}]\n" + (
        "    backendRefs: [{name: web, port: 80}]\n"
    )
    out = run(
        route("any", parent + rule % "/any")
        + "---"
        + route("wide", parent + "  hostnames: ['*.example.com']\n" + rule % "/wide")
        + "---"
        + route("one", parent + "  hostnames: [a.example.com]\n" + rule % "/one")
    )

    def paths(name: str) -> list[str]:
        vs = virtual_service(out, name)
        return [r["match"][0]["uri"]["exact"] for r in vs["spec"]["http"]]

    # The listener's hostname is *.example.com: a route without hostnames takes it.
    # Equal matches: the more specific hostname's first, then by the route's name.
    assert paths("gw-gwapi-web-a.example.com") == ["/one", "/any", "/wide"]
    assert paths("gw-gwapi-web-wildcard.example.com") == ["/any", "/wide"]


def test_matching_across_routes_with_intersecting_hostnames() -> None:
    """The Gateway API conformance test HTTPRouteMatchingAcrossRoutes' routes."""
    parent = "  parentRefs: [{name: gw, namespace: infra, sectionName: all}]\n"
    part1 = (
        parent
        + """  hostnames: [example.com, example.net]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}, {headers: [{name: version, value: one}]}]
    backendRefs: [{name: web, port: 80}]
"""
    )
    part2 = (
        parent
        + """  hostnames: ["*.com"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}, {headers: [{name: version, value: two}]}]
    backendRefs: [{name: other, namespace: team, port: 80}]
"""
    )
    gateway = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners: [{name: all, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: team}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
---
"""
    text = BASE.split("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway")[0]
    parsed = parse_documents(
        text + "---" + gateway + route("part1", part1) + "---" + route("part2", part2), "t"
    )
    assert not parsed.errors, [str(e) for e in parsed.errors]
    out = convert(parsed.resources, now="T")

    def table(name: str) -> list[tuple[str, int, str]]:
        vs = virtual_service(out, name)
        return [
            (
                next(iter(r["match"][0]["uri"].values())),
                len(r["match"][0].get("headers", {})),
                r["route"][0]["destination"]["host"].split(".")[0],
            )
            for r in vs["spec"]["http"]
        ]

    assert table("gw-gwapi-all-example.com") == [
        ("/v2", 0, "other"),
        ("/v2/", 0, "other"),
        ("/", 1, "web"),  # version: one (example.com is more specific than *.com)
        ("/", 1, "other"),  # version: two
        ("/", 0, "web"),
    ]
    # example.net is not under *.com: /v2 goes to part1's catch-all there.
    assert [row[2] for row in table("gw-gwapi-all-example.net")] == ["web", "web"]


def test_mesh_parent_ports_by_number_or_section_name() -> None:
    def parent(extra: str) -> str:
        return (
            f"  parentRefs: [{{group: '', kind: Service, name: web{extra}}}]\n"
            "  rules: [{backendRefs: [{name: web, port: 80}]}]"
        )

    by_name = run(route("r", parent(", sectionName: http")))
    vs = virtual_service(by_name, "web-gwapi-mesh")
    assert vs["spec"]["http"][0]["match"][0]["port"] == 80
    for extra in (", sectionName: grpc", ", port: 81"):
        refused = run(route("r", parent(extra)))
        assert parent_conditions(refused, "r")[0]["Accepted"] == "False/NoMatchingParent"
