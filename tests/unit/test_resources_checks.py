"""Semantic checks, one case per rule: the field at fault and the message."""

from __future__ import annotations

import textwrap

import pytest

from amimesh.resources import parse_documents


def vs(spec: str) -> str:
    head = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n"
    return head + textwrap.indent(textwrap.dedent(spec), "  ")


def dr(spec: str) -> str:
    head = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n"
    return head + "  host: r\n" + textwrap.indent(textwrap.dedent(spec), "  ")


def se(spec: str) -> str:
    head = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: r}\nspec:\n"
    return head + textwrap.indent(textwrap.dedent(spec), "  ")


ROUTE = "route: [{destination: {host: r}}]"

CASES: list[tuple[str, str, list[str]]] = [
    (
        "withoutHeaders regex * means absent; elsewhere it is an error",
        vs(f"""\
            hosts: [r]
            http:
            - match:
              - withoutHeaders: {{x-debug: {{regex: "*"}}}}
                headers: {{x-user: {{regex: "*"}}}}
              {ROUTE}
            """),
        [
            'spec.http[0].match[0].headers.x-user.regex: is not a valid regular expression: "*" '
            'repeats nothing (write ".*" to match anything)'
        ],
    ),
    (
        "an empty StringMatch means presence on headers only",
        vs(f"""\
            hosts: [r]
            http:
            - match: [{{uri: {{}}, headers: {{x-user: {{}}}}, queryParams: {{debug: {{}}}}}}]
              {ROUTE}
              corsPolicy: {{allowOrigins: [{{}}]}}
            """),
        [
            "spec.http[0].match[0].uri: must set one of exact, prefix, regex",
            "spec.http[0].corsPolicy.allowOrigins[0]: must set one of exact, prefix, regex",
        ],
    ),
    (
        "delegate VirtualService names no gateways",
        vs(f"gateways: [edge]\nhttp: [{{{ROUTE}}}]\n"),
        ["spec.gateways: must be empty on a delegate VirtualService (one without hosts)"],
    ),
    (
        "VirtualService without routes",
        vs("hosts: [r]\n"),
        ["spec.http: must have at least one http, tls or tcp route"],
    ),
    (
        "hosts with a port, a bad wildcard",
        vs(f"hosts: ['r:80', 'a.*.com', '*.shop.svc.cluster.local', '*']\nhttp: [{{{ROUTE}}}]\n"),
        [
            'spec.hosts[0]: must be a host name without a port, got "r:80"',
            'spec.hosts[1]: may only start with "*." as a wildcard, got "a.*.com"',
        ],
    ),
    (
        "sourceNamespace, subset and destination host",
        vs("""\
            hosts: [r]
            http:
            - match: [{sourceNamespace: Shop}]
              route: [{destination: {host: '*.r', subset: V1}}]
            """),
        [
            "spec.http[0].match[0].sourceNamespace: must be a DNS label: at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit, got \"Shop\"",
            'spec.http[0].route[0].destination.host: must not be a wildcard here, got "*.r"',
            "spec.http[0].route[0].destination.subset: must be a DNS label: at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit, got \"V1\"",
        ],
    ),
    (
        "authority rewritten twice",
        vs(f"""\
            hosts: [r]
            http:
            - {ROUTE}
              rewrite: {{authority: a.example.com}}
              headers: {{request: {{set: {{host: b.example.com}}}}}}
            """),
        [
            "spec.http[0].headers.request.set.host: the authority is already rewritten elsewhere "
            "in this route"
        ],
    ),
    (
        "redirect without a target, bad scheme",
        vs("hosts: [r]\nhttp:\n- redirect: {redirectCode: 302}\n- redirect: {scheme: ftp}\n"),
        [
            "spec.http[0].redirect: must set at least one of uri, authority, scheme, port",
            'spec.http[1].redirect.scheme: must be "http" or "https", got "ftp"',
        ],
    ),
    (
        "rewrite with uri and regex, empty rewrite",
        vs(f"""\
            hosts: [r]
            http:
            - {ROUTE}
              rewrite: {{uri: /a, uriRegexRewrite: {{match: ^/b, rewrite: /c}}}}
            - {ROUTE}
              rewrite: {{}}
            - {ROUTE}
              rewrite: {{uriRegexRewrite: {{match: "*", rewrite: /}}}}
            """),
        [
            "spec.http[0].rewrite.uriRegexRewrite: cannot be used together with uri",
            "spec.http[1].rewrite: must set uri, uriRegexRewrite or authority",
            'spec.http[2].rewrite.uriRegexRewrite.match: is not a valid regular expression: "*" '
            'repeats nothing (write ".*" to match anything)',
        ],
    ),
    (
        "empty fault, fault with directResponse",
        vs("""\
            hosts: [r]
            http:
            - route: [{destination: {host: r}}]
              fault: {}
            - directResponse: {status: 503, body: {bytes: "not base64!"}}
              fault: {abort: {httpStatus: 500}}
            """),
        [
            "spec.http[0].fault: must set delay, abort or both",
            "spec.http[1].fault: cannot be used with directResponse: the route answers the client "
            "itself",
            "spec.http[1].directResponse.body.bytes: must be base64-encoded",
        ],
    ),
    (
        "header value with a newline",
        vs(f"""\
            hosts: [r]
            http:
            - {ROUTE}
              headers: {{response: {{add: {{x-a: "a\\nb"}}}}}}
            """),
        [
            "spec.http[0].headers.response.add.x-a: header value must not contain control "
            "characters such as newlines"
        ],
    ),
    (
        "exportTo",
        vs(f"hosts: [r]\nexportTo: ['.', istio-system, 'Bad NS']\nhttp: [{{{ROUTE}}}]\n"),
        ['spec.exportTo[2]: must be ".", "*" or a namespace name, got "Bad NS"'],
    ),
    (
        "simple and consistentHash, no hash key",
        dr(
            "trafficPolicy:\n"
            "  loadBalancer: {simple: RANDOM, consistentHash: {minimumRingSize: 8}}\n"
        ),
        [
            "spec.trafficPolicy.loadBalancer.consistentHash: cannot be used together with simple: "
            "choose one load-balancing policy",
            "spec.trafficPolicy.loadBalancer.consistentHash: must set exactly one hash key of "
            "httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName (got none)",
        ],
    ),
    (
        "locality: distribute weights, failover with distribute (in a subset)",
        dr("""\
            subsets:
            - name: v1
              trafficPolicy:
                loadBalancer:
                  localityLbSetting:
                    distribute: [{from: us/east/*, to: {us/east/*: 80, us/west/*: 10}}]
                    failover: [{from: us-east, to: us-west}]
            """),
        [
            "spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting.failover: cannot be "
            "used together with distribute",
            "spec.subsets[0].trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: "
            "weights must add up to 100, got 90",
        ],
    ),
    (
        "ServiceEntry hosts and addresses",
        se("hosts: ['*', api.example.com]\naddresses: [10.0.0.0/8, not-an-ip]\n"),
        [
            'spec.hosts[0]: must not be "*"',
            'spec.addresses[1]: must be an IP address or CIDR, got "not-an-ip"',
        ],
    ),
    (
        "ServiceEntry endpoints and workloadSelector, NONE with endpoints",
        se("""\
            hosts: [api.example.com]
            workloadSelector: {labels: {app: api}}
            endpoints: [{address: 10.0.0.1}]
            """),
        [
            "spec.workloadSelector: cannot be used together with endpoints",
            "spec.endpoints: must be empty when resolution is NONE",
        ],
    ),
    (
        "ServiceEntry DNS with wildcards, DNS_ROUND_ROBIN with two endpoints",
        se("hosts: ['*.example.com']\nresolution: DNS\n")
        + "---\n"
        + se(
            "hosts: [a.example.com]\nresolution: DNS_ROUND_ROBIN\n"
            "endpoints: [{address: a.example.com}, {address: b.example.com}]\n"
        ),
        [
            "spec.hosts[0]: must not be a wildcard when resolution is DNS without endpoints",
            "spec.endpoints: may have at most one entry with DNS_ROUND_ROBIN",
        ],
    ),
    (
        "ServiceEntry duplicate port names, STATIC endpoint without address",
        se("""\
            hosts: [api.example.com]
            resolution: STATIC
            ports: [{number: 80, name: http}, {number: 8080, name: http}]
            endpoints: [{labels: {a: b}}]
            """),
        [
            'spec.ports[1].name: port name "http" is already used by ports[0]',
            "spec.endpoints[0].address: is required when resolution is STATIC",
        ],
    ),
    (
        "ServiceEntry protocols are read case-insensitively; some are not supported yet",
        se("hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: grpc-web}]\n"),
        ['spec.ports[0].protocol: "GRPC-WEB" is not supported by Ami yet'],
    ),
    (
        "WorkloadEntry port names",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm}\n"
        "spec: {address: 10.0.0.1, ports: {HTTP: 80}}\n",
        [
            "spec.ports.HTTP: port name must be a DNS label: at most 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit, got \"HTTP\""
        ],
    ),
    (
        "Service name with a dot, bad port name, duplicate port names",
        "apiVersion: v1\nkind: Service\nmetadata: {name: r.v1}\nspec:\n"
        "  ports: [{name: HTTP, port: 80}, {name: web, port: 81}, {name: web, port: 82}]\n",
        [
            "metadata.name: a Service name must be at most 63 lowercase letters, digits and '-', "
            'starting with a letter and ending with a letter or digit, got "r.v1"',
            "spec.ports[0].name: must be a DNS label: at most 63 lowercase letters, digits and "
            "'-', starting and ending with a letter or digit, got \"HTTP\"",
            'spec.ports[2].name: port name "web" is already used by ports[1]',
        ],
    ),
    (
        "same port number with another protocol is fine",
        "apiVersion: v1\nkind: Service\nmetadata: {name: dns}\nspec:\n"
        "  ports: [{name: tcp, port: 53}, {name: udp, port: 53, protocol: UDP}]\n",
        [],
    ),
    (
        "Workload probe names a port it does not have; duplicate port names",
        "apiVersion: ami.dev/v1alpha1\nkind: Workload\nmetadata: {name: w}\nspec:\n"
        "  command: [./w]\n  ports: [{name: http, port: 80}, {name: http, port: 81}]\n"
        "  readinessProbe: {httpGet: {port: admin}}\n",
        [
            'spec.ports[1].name: port name "http" is already used by ports[0]',
            "spec.readinessProbe.httpGet.port: names no port of this Workload (its port names: "
            'http), got "admin"',
        ],
    ),
    *(
        (
            f"Workload max-concurrency {value}",
            "apiVersion: ami.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: w\n"
            f"  annotations: {{ami.dev/max-concurrency: '{value}'}}\nspec: {{command: [./w]}}\n",
            []
            if ok
            else [
                'metadata.annotations["ami.dev/max-concurrency"]: must be a whole number from 0 '
                f'to 1000 (0: no limit), got "{value}"'
            ],
        )
        for value, ok in [
            ("0", True),
            ("1", True),
            ("1000", True),
            ("1001", False),
            ("-1", False),
            ("+1", False),
            ("1.5", False),
            ("", False),
            ("ten", False),
            ("99999999999999999999", False),
        ]
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check(text: str, expected: list[str]) -> None:
    result = parse_documents(text, "x.yaml")
    assert [f"{e.field}: {e.message}" for e in result.errors] == expected
    assert bool(result.resources) == (expected == [])
