"""Broken documents: each gives precisely the errors a user should read."""

from __future__ import annotations

import textwrap

import pytest

from amimesh.resources import parse_documents

SOURCE = "shop/vs.yaml"
P = f"{SOURCE}: document 0 (line 1)"

# Every kind Ami reads, as the unknown-kind error lists them (by API group, in the
# registry's order).
SUPPORTED = (
    "Service, ConfigMap, Secret (v1), Workload (ami.dev/v1alpha1), VirtualService, "
    "DestinationRule, ServiceEntry, WorkloadEntry, Gateway, Sidecar "
    "(networking.istio.io/v1alpha3, v1beta1, v1), PeerAuthentication, "
    "RequestAuthentication, AuthorizationPolicy (security.istio.io/v1beta1, v1), "
    "Telemetry (telemetry.istio.io/v1alpha1, v1), ProxyConfig (networking.istio.io/v1beta1), "
    "EnvoyFilter (networking.istio.io/v1alpha3), Service, Configuration, Revision, Route "
    "(serving.knative.dev/v1), Broker, Trigger (eventing.knative.dev/v1), PingSource, "
    "SinkBinding, ContainerSource, ApiServerSource (sources.knative.dev/v1), Channel, "
    "InMemoryChannel, Subscription (messaging.knative.dev/v1), Sequence, Parallel "
    "(flows.knative.dev/v1), NatsJetStreamChannel (messaging.knative.dev/v1alpha1), Task, "
    "Pipeline, TaskRun, PipelineRun (tekton.dev/v1, v1beta1), EventListener, Trigger, "
    "TriggerBinding, ClusterTriggerBinding, TriggerTemplate (triggers.tekton.dev/v1beta1, "
    "v1alpha1), GatewayClass, Gateway, HTTPRoute (gateway.networking.k8s.io/v1, v1beta1, "
    "v1alpha2), GRPCRoute (gateway.networking.k8s.io/v1, v1alpha2), TCPRoute, TLSRoute "
    "(gateway.networking.k8s.io/v1alpha2, v1alpha3, v1), ReferenceGrant "
    "(gateway.networking.k8s.io/v1beta1, v1alpha2, v1), Application (argoproj.io/v1alpha1), "
    "HTTPProxy (projectcontour.io/v1)"
)
VS = f"{P}: VirtualService/default/reviews"
DR = f"{P}: DestinationRule/default/reviews"
SE = f"{P}: ServiceEntry/default/ext"
SVC = f"{P}: Service/default/reviews"

VS_HEAD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
"""
DR_HEAD = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
"""
SE_HEAD = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ext
spec:
  hosts: [api.example.com]
"""
SVC_HEAD = """\
apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
"""
DEST = "- destination: {host: reviews}\n"


def vs(http: str) -> str:
    return VS_HEAD + "  http:\n" + textwrap.indent(textwrap.dedent(http), "  ")


CASES: list[tuple[str, str, list[str]]] = [
    (
        "negative weight, third document",
        "a: 1\n---\nb: 2\n---\n"
        + VS_HEAD
        + "  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n"
        + "      weight: 110\n    - destination: {host: reviews, subset: v2}\n      weight: -10\n",
        [
            f"{SOURCE}: document 0 (line 1): apiVersion: is required",
            f"{SOURCE}: document 0 (line 1): kind: is required",
            f"{SOURCE}: document 1 (line 3): apiVersion: is required",
            f"{SOURCE}: document 1 (line 3): kind: is required",
            f"{SOURCE}: document 2 (line 5): VirtualService/default/reviews: "
            "spec.http[0].route[1].weight: must be at least 0, got -10",
        ],
    ),
    (
        "weights add up to 0",
        vs("""\
            - route:
              - destination: {host: reviews, subset: v1}
              - destination: {host: reviews, subset: v2}
                weight: 0
            """),
        [
            f"{VS}: spec.http[0].route: the weights of the 2 destinations add up to 0: give at "
            "least one a weight (weights are relative: a destination gets weight/sum of the "
            "traffic)"
        ],
    ),
    (
        "unknown field",
        vs("- route: [{destination: {host: reviews}}]\n  foo: 1\n"),
        [f'{VS}: spec.http[0].foo: unknown field (Ami does not know "foo" on HTTPRoute)'],
    ),
    (
        "misspelled field gets a suggestion",
        vs("- route:\n  - destination: {host: reviews}\n    weigth: 100\n"),
        [
            f"{VS}: spec.http[0].route[0].weigth: unknown field (Ami does not know "
            '"weigth" on HTTPRouteDestination; did you mean "weight"?)'
        ],
    ),
    (
        "snake_case field gets the camelCase name",
        vs("- route: [{destination: {host: reviews}}]\n  retries: {attempts: 2, retry_on: 5xx}\n"),
        [
            f"{VS}: spec.http[0].retries.retry_on: unknown field (Ami does not know "
            '"retry_on" on HTTPRetry; did you mean "retryOn"?)'
        ],
    ),
    (
        "field Ami does not support yet",
        vs("- route: [{destination: {host: reviews}}]\n  match: [{scheme: {exact: https}}]\n"),
        [f"{VS}: spec.http[0].match[0].scheme: is not supported by Ami yet"],
    ),
    (
        "bad duration",
        vs("- route: [{destination: {host: reviews}}]\n  timeout: 5 seconds\n"),
        [
            f'{VS}: spec.http[0].timeout: must be a duration such as "1s", "250ms" or "1m30s", '
            'got "5 seconds"'
        ],
    ),
    (
        "percentage above 100",
        vs(
            "- route: [{destination: {host: reviews}}]\n"
            "  mirror: {host: reviews, subset: v2}\n"
            "  mirrorPercentage: {value: 180}\n"
        ),
        [f"{VS}: spec.http[0].mirrorPercentage.value: must be at most 100, got 180"],
    ),
    (
        "bad enum lists the allowed values",
        DR_HEAD + "  trafficPolicy:\n    loadBalancer: {simple: FASTEST}\n",
        [
            f"{DR}: spec.trafficPolicy.loadBalancer.simple: must be one of "
            '"UNSPECIFIED", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN", "RANDOM", '
            '"PASSTHROUGH", got "FASTEST"'
        ],
    ),
    (
        "enum value Ami does not support yet",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api}\n"
        "spec: {hosts: [api.example.com], resolution: DYNAMIC_DNS}\n",
        [
            f'{P}: ServiceEntry/default/api: spec.resolution: "DYNAMIC_DNS" is not supported by '
            "Ami yet"
        ],
    ),
    (
        "missing name",
        "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: shop\n"
        "spec:\n  ports: [{port: 80}]\n",
        [f"{P}: metadata.name: is required"],
    ),
    (
        "bad namespace characters",
        VS_HEAD.replace("  name: reviews\n", "  name: reviews\n  namespace: Shop_EU\n")
        + "  http:\n  - route: [{destination: {host: reviews}}]\n",
        [
            f"{P}: VirtualService/Shop_EU/reviews: metadata.namespace: must be a DNS label: "
            "lowercase letters, digits and '-', starting and ending with a letter or digit, "
            'got "Shop_EU"'
        ],
    ),
    (
        "regex with a lookahead",
        vs(
            "- match:\n  - uri: {regex: '^/api(?!/internal)'}\n"
            "  route: [{destination: {host: reviews}}]\n"
        ),
        [
            f"{VS}: spec.http[0].match[0].uri.regex: uses negative lookahead (?!...), which RE2 "
            "(the regex engine of Envoy) does not support"
        ],
    ),
    (
        "regex that does not compile",
        vs("- match:\n  - headers:\n      x-id: {regex: '[0-9'}\n  route:\n  " + DEST),
        [
            f"{VS}: spec.http[0].match[0].headers.x-id.regex: is not a valid regular expression: "
            "unterminated character set at position 0"
        ],
    ),
    (
        "YAML syntax error names line and column",
        VS_HEAD
        + "  http:\n  - route: [{destination: {host: reviews}}\n    timeout: 1s\n---\nb: 1\n",
        [
            f"{P}: invalid YAML at line 9, column 5: did not find expected ',' or ']'",
        ],
    ),
    (
        "key written twice",
        VS_HEAD + "  hosts: [ratings]\n  http: []\n",
        [
            f"{SOURCE}: document 0 (line 1): invalid YAML at line 7, column 3: "
            'key "hosts" is written twice'
        ],
    ),
    (
        "unknown kind lists what Ami supports",
        "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: edge}\n"
        "spec: {}\n",
        [
            f'{P}: WasmPlugin/default/edge: kind: unknown kind "WasmPlugin" '
            f"(extensions.istio.io/v1alpha1); Ami supports {SUPPORTED}"
        ],
    ),
    (
        "a known kind name in another API group is unknown",
        "apiVersion: networking.example.com/v1\nkind: Gateway\nmetadata: {name: edge}\n",
        [
            f'{P}: Gateway/default/edge: kind: unknown kind "Gateway" '
            f"(networking.example.com/v1); Ami supports {SUPPORTED}"
        ],
    ),
    (
        "wrong apiVersion",
        VS_HEAD.replace("networking.istio.io/v1", "networking.istio.io/v2")
        + "  http:\n  - route: [{destination: {host: reviews}}]\n",
        [
            f"{VS}: apiVersion: VirtualService is not served at networking.istio.io/v2; use "
            "networking.istio.io/v1alpha3 or networking.istio.io/v1beta1 or networking.istio.io/v1"
        ],
    ),
    (
        "duplicate resource",
        vs("- route: [{destination: {host: reviews}}]\n")
        + "---\n"
        + vs("- route: [{destination: {host: reviews}}]\n"),
        [
            f"{SOURCE}: document 1 (line 10): VirtualService/default/reviews: metadata.name: "
            f"VirtualService/default/reviews is already defined in {P}"
        ],
    ),
    (
        "List item errors carry the item index",
        "apiVersion: v1\nkind: List\nitems:\n"
        + textwrap.indent(SVC_HEAD + "  ports: [{port: 80}]\n", "  ").replace(
            "  apiVersion", "- apiVersion", 1
        )
        + textwrap.indent(SVC_HEAD + "  ports: [{port: 0}]\n", "  ").replace(
            "  apiVersion", "- apiVersion", 1
        ),
        [
            f"{SVC}: items[1].spec.ports[0].port: must be at least 1, got 0",
        ],
    ),
    (
        "document that is not a mapping",
        "- apiVersion: v1\n  kind: Service\n",
        [f"{P}: must be a mapping with apiVersion, kind, metadata and spec, got a list"],
    ),
    (
        "scalar document",
        "just some text\n",
        [f'{P}: must be a mapping with apiVersion, kind, metadata and spec, got "just some text"'],
    ),
    (
        "List without items, List inside a List",
        "apiVersion: v1\nkind: List\n---\napiVersion: v1\nkind: List\nitems:\n- kind: List\n",
        [
            f"{P}: items: is required",
            f"{SOURCE}: document 1 (line 4): items[0].kind: a List cannot contain another List",
        ],
    ),
    (
        "missing apiVersion and kind",
        "metadata: {name: reviews}\nspec: {}\n",
        [f"{P}: apiVersion: is required", f"{P}: kind: is required"],
    ),
    (
        "route and redirect together",
        vs("- route: [{destination: {host: reviews}}]\n  redirect: {uri: /v2}\n"),
        [
            f"{VS}: spec.http[0].redirect: cannot be used together with route: an HTTP route "
            "takes exactly one of route, redirect, directResponse or delegate"
        ],
    ),
    (
        "rewrite with redirect",
        vs("- redirect: {uri: /v2}\n  rewrite: {uri: /v3}\n"),
        [
            f"{VS}: spec.http[0].rewrite: cannot be used with redirect: the route answers the "
            "client itself"
        ],
    ),
    (
        "redirect and directResponse",
        vs("- redirect: {uri: /v2}\n  directResponse: {status: 503}\n"),
        [
            f"{VS}: spec.http[0].directResponse: cannot be used together with redirect: an HTTP "
            "route takes exactly one of route, redirect, directResponse or delegate"
        ],
    ),
    (
        "route with no action",
        vs("- match:\n  - uri: {prefix: /}\n"),
        [f"{VS}: spec.http[0]: needs one of route, redirect, directResponse or delegate"],
    ),
    (
        "delegate VirtualService cannot delegate",
        VS_HEAD.replace("  hosts: [reviews]\n", "") + "  http:\n  - delegate: {name: other}\n",
        [
            f"{VS}: spec.http[0].delegate: a delegate VirtualService (one without hosts) cannot "
            "delegate again"
        ],
    ),
    (
        "retryOn with an unknown condition",
        vs(
            "- route: [{destination: {host: reviews}}]\n"
            "  retries: {attempts: 2, retryOn: '5xx,oops'}\n"
        ),
        [
            f'{VS}: spec.http[0].retries.retryOn: "oops" is not a retry condition; use HTTP '
            "status codes (503) or: 5xx, cancelled, connect-failure, deadline-exceeded, "
            "envoy-ratelimited, gateway-error, http3-post-connect-failure, internal, "
            "refused-stream, reset, reset-before-request, resource-exhausted, retriable-4xx, "
            "retriable-headers, retriable-status-codes, unavailable"
        ],
    ),
    (
        "retries settings with attempts 0",
        vs(
            "- route: [{destination: {host: reviews}}]\n"
            "  retries: {attempts: 0, perTryTimeout: 1s}\n"
        ),
        [
            f"{VS}: spec.http[0].retries.perTryTimeout: has no effect: attempts is 0, which "
            "turns retries off"
        ],
    ),
    (
        "uppercase header name in a match",
        vs("- match:\n  - headers:\n      End-User: {exact: jason}\n  route:\n  " + DEST),
        [
            f"{VS}: spec.http[0].match[0].headers.End-User: header names must be lowercase: "
            'write "end-user"'
        ],
    ),
    (
        "header operations Envoy would reject",
        vs(
            "- route: [{destination: {host: reviews}}]\n"
            "  headers:\n"
            "    request:\n"
            "      set: {':path': /x, x-rate: 50%}\n"
            "    response:\n"
            "      remove: [host]\n"
        ),
        [
            f'{VS}: spec.http[0].headers.request.set[":path"]: pseudo-header :path cannot be '
            "changed",
            f'{VS}: spec.http[0].headers.request.set.x-rate: has a lone "%" in "50%": write "%%" '
            "for a percent sign (Envoy reads %NAME% as a variable)",
            f"{VS}: spec.http[0].headers.response.remove[0]: the host header can only be set on "
            "requests",
        ],
    ),
    (
        "several errors in one document",
        vs(
            "- route:\n"
            "  - destination: {host: 'http://reviews'}\n"
            "    weight: -1\n"
            "  timeout: forever\n"
        ),
        [
            f"{VS}: spec.http[0].route[0].weight: must be at least 0, got -1",
            f'{VS}: spec.http[0].timeout: must be a duration such as "1s", "250ms" or "1m30s", '
            'got "forever"',
        ],
    ),
    (
        "host written as a URL",
        vs("- route:\n  - destination: {host: 'http://reviews:9080'}\n"),
        [
            f"{VS}: spec.http[0].route[0].destination.host: must be a host name, not a URL: "
            'write "reviews:9080"'
        ],
    ),
    (
        "alias 'from' cannot be written as its Python name",
        DR_HEAD
        + "  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n"
        + "        failover: [{from_: us-east, to: us-west}]\n",
        [
            f"{DR}: spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0].from: is "
            "required",
            f"{DR}: spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0].from_: unknown "
            'field (Ami does not know "from_" on LocalityFailover; did you mean "from"?)',
        ],
    ),
    (
        "subset names unique and DNS labels",
        DR_HEAD + "  subsets:\n  - {name: v1}\n  - {name: V2.0}\n  - {name: v1}\n",
        [
            f"{DR}: spec.subsets[1].name: must be a DNS label: at most 63 lowercase letters, "
            "digits and '-', starting and ending with a letter or digit, got \"V2.0\"",
            f'{DR}: spec.subsets[2].name: subset "v1" is already defined by subsets[0]',
        ],
    ),
    (
        "consistentHash with two keys",
        DR_HEAD
        + "  trafficPolicy:\n    loadBalancer:\n"
        + "      consistentHash: {httpHeaderName: x-user, useSourceIp: true}\n",
        [
            f"{DR}: spec.trafficPolicy.loadBalancer.consistentHash: must set exactly one hash "
            "key of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName (got "
            "httpHeaderName and useSourceIp)"
        ],
    ),
    (
        "label value that YAML reads as a number",
        DR_HEAD + "  subsets:\n  - name: v1\n    labels: {version: 1}\n",
        [f'{DR}: spec.subsets[0].labels.version: must be a string, got 1 (quote it: "1")'],
    ),
    (
        "ServiceEntry STATIC without endpoints, duplicate ports",
        SE_HEAD
        + "  resolution: STATIC\n  ports:\n"
        + "  - {number: 443, name: https, protocol: TLS}\n"
        + "  - {number: 443, name: https-alt, protocol: TLS}\n",
        [
            f"{SE}: spec.ports[1].number: port 443 is already defined by ports[0]",
            f"{SE}: spec.endpoints: resolution STATIC needs endpoints with addresses, or a "
            "workloadSelector",
        ],
    ),
    (
        "ServiceEntry STATIC endpoint with a host name",
        SE_HEAD
        + "  resolution: STATIC\n  ports: [{number: 80, name: http}]\n"
        + "  endpoints: [{address: api.example.com, ports: {web: 8080}}]\n",
        [
            f"{SE}: spec.endpoints[0].address: must be an IP address when resolution is STATIC, "
            'got "api.example.com" (use resolution DNS for host names)',
            f"{SE}: spec.endpoints[0].ports.web: names no port of this ServiceEntry (its port "
            "names: http)",
        ],
    ),
    (
        "resolution Ami does not support yet",
        SE_HEAD + "  resolution: DYNAMIC_DNS\n",
        [f'{SE}: spec.resolution: "DYNAMIC_DNS" is not supported by Ami yet'],
    ),
    (
        "Service ports: names needed, numbers unique",
        SVC_HEAD + "  ports:\n  - {port: 9080}\n  - {port: 9080, name: http}\n",
        [
            f"{SVC}: spec.ports[0].name: is required when a Service has several ports",
            f"{SVC}: spec.ports[1].port: port 9080/TCP is already defined by ports[0]",
        ],
    ),
    (
        "Service type Ami does not support yet, targetPort out of range",
        SVC_HEAD + "  type: ExternalName\n  ports: [{port: 80, targetPort: 70000}]\n",
        [
            f"{SVC}: spec.ports[0].targetPort: must be a port number from 1 to 65535, got 70000",
            f'{SVC}: spec.type: "ExternalName" is not supported by Ami yet',
        ],
    ),
    (
        "Workload port numbers unique",
        "apiVersion: ami.dev/v1alpha1\nkind: Workload\nmetadata: {name: api}\nspec:\n"
        "  command: [./api]\n  ports: [{name: http, port: 8080}, {name: admin, port: 8080}]\n",
        [
            f"{P}: Workload/default/api: spec.ports[1].port: port 8080 is already defined by "
            "ports[0]"
        ],
    ),
    (
        "WorkloadEntry without an address",
        "apiVersion: networking.istio.io/v1beta1\nkind: WorkloadEntry\nmetadata: {name: vm}\n"
        "spec:\n  labels: {app: vm}\n",
        [f"{P}: WorkloadEntry/default/vm: spec.address: is required"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_document(text: str, expected: list[str]) -> None:
    result = parse_documents(text, SOURCE)
    assert [str(e) for e in result.errors] == expected


def test_a_broken_document_does_not_drop_the_others() -> None:
    good = vs("- route: [{destination: {host: reviews}}]\n")
    bad = good.replace("name: reviews", "name: ratings").replace("hosts: [reviews]", "hosts: 7")
    result = parse_documents(good + "---\n" + bad, SOURCE)
    assert [r.ref for r in result.resources] == ["VirtualService/default/reviews"]
    assert [str(e) for e in result.errors] == [
        f"{SOURCE}: document 1 (line 10): VirtualService/default/ratings: spec.hosts: must be a "
        "list, got 7"
    ]


def test_error_fields() -> None:
    text = "a: 1\n---\n" + vs("- route: [{destination: {host: reviews}}]\n  timeout: soon\n")
    [error] = [e for e in parse_documents(text, SOURCE).errors if e.document == 1]
    assert (error.file, error.document, error.line) == (SOURCE, 1, 3)
    assert (error.ref, error.field) == ("VirtualService/default/reviews", "spec.http[0].timeout")
    assert error.message.startswith("must be a duration")
