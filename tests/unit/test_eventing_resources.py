"""Knative Eventing resources: what validates, and each error with its file, resource
and field path; the expansion of Brokers and Triggers."""

from __future__ import annotations

import textwrap

import pytest

from amimesh.eventing import config as cfg
from amimesh.eventing import expand as ex
from amimesh.resources import iso8601, parse_documents, parse_object

BROKER = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: default
  annotations: {eventing.knative.dev/broker.class: MTChannelBasedBroker}
spec:
  delivery:
    retry: 3
    backoffPolicy: linear
    backoffDelay: PT0.1S
    deadLetterSink:
      ref: {apiVersion: v1, kind: Service, name: dls}
"""

KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: orders}
spec:
  template:
    spec:
      containers: [{image: x, command: [python, app.py]}]
"""

DLS = """
apiVersion: v1
kind: Service
metadata: {name: dls}
spec:
  selector: {app: dls}
  ports: [{port: 8080}]
"""


def trigger(spec: str, name: str = "t") -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    return (
        f"apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: {{name: {name}}}\n"
        f"spec:\n{body}\n"
    )


def errors(text: str) -> list[str]:
    return [str(e) for e in parse_documents(text, "events.yaml").errors]


def test_broker_trigger_and_sources_validate() -> None:
    text = "\n---\n".join(
        [
            BROKER,
            trigger(
                """
                broker: default
                filter: {attributes: {type: order.placed, region: ""}}
                filters:
                - any: [{exact: {type: a}}, {not: {prefix: {source: b}}}]
                subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: orders}}
                """
            ),
            """
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: every-minute}
spec:
  schedule: "* * * * *"
  timezone: Europe/Paris
  data: '{"hello": "world"}'
  contentType: application/json
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
""",
            """
apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata: {name: bind}
spec:
  subject: {apiVersion: ami.dev/v1alpha1, kind: Workload, name: producer}
  sink: {uri: "http://broker-ingress.knative-eventing.svc.cluster.local/default/default"}
  ceOverrides: {extensions: {team: shop}}
""",
            """
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {name: heartbeats}
spec:
  template:
    spec:
      containers: [{image: heartbeats, command: [python, beat.py]}]
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
""",
        ]
    )
    result = parse_documents(text, "events.yaml")
    assert result.errors == []
    assert [r.ref for r in result.resources] == [
        "Broker/default/default",
        "Trigger/default/t",
        "PingSource/default/every-minute",
        "SinkBinding/default/bind",
        "ContainerSource/default/heartbeats",
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "broker: default\nfilters: [{exact: {type: a}, prefix: {source: b}}]\n"
            "subscriber: {uri: 'http://x/'}",
            "Trigger/default/t: spec.filters[0]: sets 2 dialects (exact, prefix); a filter "
            "object has exactly one",
        ),
        (
            "broker: default\nfilters: [{all: [{regex: {type: a}}]}]\nsubscriber: {uri: 'http://x/'}",
            'Trigger/default/t: spec.filters[0].all[0]: unknown filter dialect "regex": a '
            "filter is one of exact, prefix, suffix, all, any, not, cesql",
        ),
        (
            "broker: default\nfilters: [{cesql: \"type = \"}]\nsubscriber: {uri: 'http://x/'}",
            "Trigger/default/t: spec.filters[0].cesql: is not a valid CESQL expression: "
            "unexpected the end at 8",
        ),
        (
            "broker: default\nfilters: [{cesql: \"type = 'a'\", exact: {type: a}}]\n"
            "subscriber: {uri: 'http://x/'}",
            "Trigger/default/t: spec.filters[0]: sets 2 dialects (exact, cesql)",
        ),
        (
            "broker: default\nsubscriber: {uri: 'http://x/'}\ndelivery: {backoffDelay: 2s}",
            "Trigger/default/t: spec.delivery.backoffDelay: must be an ISO-8601 duration such "
            'as "PT0.2S", "PT10S" or "PT1M", got "2s"',
        ),
        (
            "broker: default\nsubscriber: {uri: 'http://x/'}\ndelivery: {backoffDelay: P1M}",
            "Trigger/default/t: spec.delivery.backoffDelay: years and months have no fixed "
            'length; write weeks, days or hours, got "P1M"',
        ),
        (
            "broker: default\nsubscriber: {uri: 'http://x/'}\ndelivery: {backoffPolicy: random}",
            "Trigger/default/t: spec.delivery.backoffPolicy:",
        ),
        (
            "broker: default\nfilter: {attributes: {Type: a}}\nsubscriber: {uri: 'http://x/'}",
            "Trigger/default/t: spec.filter.attributes.Type: an attribute name is lowercase "
            'letters and digits, got "Type"',
        ),
        (
            "broker: default\nfilters: [{exact: {type: ''}}]\nsubscriber: {uri: 'http://x/'}",
            "Trigger/default/t: spec.filters[0].exact.type: must not be empty",
        ),
        (
            "broker: default\nsubscriber: {}",
            "Trigger/default/t: spec.subscriber: must set ref or uri",
        ),
        (
            "broker: default\nsubscriber: {uri: '/relative'}",
            "Trigger/default/t: spec.subscriber.uri: must be an absolute http(s) URL",
        ),
        (
            "broker: default\nsubscriber: {ref: {apiVersion: apps/v1, kind: Deployment, name: d}}",
            "Trigger/default/t: spec.subscriber.ref: Ami cannot address Deployment (apps/v1) yet",
        ),
    ],
)
def test_trigger_errors(spec: str, expected: str) -> None:
    found = errors(trigger(spec))
    assert len(found) == 1, found
    assert found[0].startswith("events.yaml: document 0 (line 1): " + expected), found[0]


def test_ping_source_schedule_error() -> None:
    text = """
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: p}
spec:
  schedule: "every minute"
  sink: {uri: "http://x/"}
"""
    assert errors(text) == [
        "events.yaml: document 0 (line 2): PingSource/default/p: spec.schedule: must be a cron "
        'schedule such as "*/2 * * * *": has 2 fields; a cron schedule has five (six with '
        'seconds); got "every minute"'
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT0.2S", 0.2),
        ("PT10S", 10.0),
        ("PT1M30S", 90.0),
        ("PT1H", 3600.0),
        ("P1D", 86400.0),
        ("P1W", 604800.0),
        ("PT0,5S", 0.5),
    ],
)
def test_iso8601(text: str, seconds: float) -> None:
    assert iso8601.parse(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "P", "PT", "1s", "PT1", "P1Y", "-PT1S", "PTS"])
def test_iso8601_refused(text: str) -> None:
    with pytest.raises(ValueError):
        iso8601.parse(text)


def _resources(*texts: str):  # type: ignore[no-untyped-def]
    result = parse_documents("\n---\n".join(texts), "x.yaml")
    assert result.errors == []
    return result.resources


RUNNER = cfg.Runner("/usr/bin/python3", "nats://127.0.0.1:4222", "/state/nats/credentials")


def test_unknown_broker_is_a_problem_of_the_trigger() -> None:
    resources = _resources(
        BROKER, DLS, trigger("broker: other\nsubscriber: {uri: 'http://x/'}", "lost")
    )
    problems = ex.reference_problems(resources)
    assert [str(p) for p in problems] == [
        'Trigger/default/lost: spec.broker: no Broker "other" in namespace "default" (the '
        "namespace has default)"
    ]
    plan = ex.expand(resources, RUNNER)
    cond = plan.status[("Trigger", "default", "lost")]["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", "BrokerDoesNotExist")
    assert plan.config.triggers == ()


def test_expansion_resolves_subscribers_and_delivery() -> None:
    resources = _resources(
        BROKER,
        KSVC,
        DLS,
        trigger(
            "broker: default\nfilter: {attributes: {type: order.placed}}\n"
            "subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: orders}}",
            "to-orders",
        ),
        trigger(
            "broker: default\nsubscriber: {ref: {apiVersion: eventing.knative.dev/v1, kind: "
            "Broker, name: default}, uri: /again}\ndelivery: {retry: 1}",
            "loop",
        ),
    )
    plan = ex.expand(resources, RUNNER)
    assert plan.problems == []
    by_name = {t.name: t for t in plan.config.triggers}
    orders = by_name["to-orders"]
    assert orders.subscriber == "http://orders.default.svc.cluster.local"
    assert orders.attributes == {"type": "order.placed"}
    # The broker's delivery, its dead-letter sink resolved.
    assert orders.delivery.retry == 3 and orders.delivery.policy == "linear"
    assert orders.delivery.dead_letter == "http://dls.default.svc.cluster.local:8080"
    loop = by_name["loop"]
    assert loop.subscriber == cfg.broker_url("default", "default") + "/again"
    assert loop.delivery.retry == 1 and loop.delivery.dead_letter == ""
    kinds = [(r["kind"], r["metadata"]["namespace"], r["metadata"]["name"]) for r in plan.derived]
    assert kinds == [
        ("Workload", "knative-eventing", "broker-ingress"),
        ("Service", "knative-eventing", "broker-ingress"),
    ]
    env = {e["name"]: e["value"] for e in plan.derived[0]["spec"]["env"]}
    assert cfg.BrokerConfig.decode(env[cfg.CONFIG_ENV]) == plan.config
    assert plan.status[("Broker", "default", "default")]["address"]["url"] == (
        "http://broker-ingress.knative-eventing.svc.cluster.local/default/default"
    )
    # Every derived resource validates as any config would.
    derived = parse_object({"apiVersion": "v1", "kind": "List", "items": plan.derived}, "derived")
    assert derived.errors == []


def test_without_a_server_nothing_runs() -> None:
    plan = ex.expand(_resources(BROKER, DLS), None)
    assert plan.derived == []
    cond = plan.status[("Broker", "default", "default")]["conditions"][0]
    assert cond["status"] == "False" and "JetStream" in cond["message"]


PING = """
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: beat}
spec:
  schedule: "*/5 * * * * *"
  data: hello
  sink: {ref: {apiVersion: v1, kind: Service, name: dls}}
"""


def test_ping_sources_run_in_the_broker_process_even_without_a_server() -> None:
    plan = ex.expand(_resources(PING, DLS), cfg.Runner("/usr/bin/python3"))
    (entry,) = plan.config.pings
    assert entry.sink == "http://dls.default.svc.cluster.local:8080"
    assert plan.config.brokers == () and plan.derived[0]["kind"] == "Workload"
    status = plan.status[("PingSource", "default", "beat")]
    assert status["conditions"][0]["status"] == "True" and status["sinkUri"] == entry.sink


def test_a_ping_source_without_its_sink() -> None:
    plan = ex.expand(_resources(PING), RUNNER)
    assert [str(p) for p in plan.problems] == [
        'PingSource/default/beat: spec.sink: no Service "dls" in namespace "default"'
    ]
    assert plan.derived == []


def test_a_binding_is_ready_with_its_sink() -> None:
    text = """
apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata: {name: bind}
spec:
  subject: {apiVersion: ami.dev/v1alpha1, kind: Workload, name: producer}
  sink: {uri: "http://x/"}
"""
    plan = ex.expand(_resources(text), RUNNER)
    status = plan.status[("SinkBinding", "default", "bind")]
    assert status["conditions"][0]["status"] == "True" and status["sinkUri"] == "http://x/"


CONTAINER_SOURCE = """
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {name: heart}
spec:
  template:
    metadata: {labels: {team: shop}}
    spec:
      serviceAccountName: heart
      containers:
      - image: heart
        command: [python, beat.py]
        args: [--fast]
        env:
        - {name: RATE, value: "1"}
        - {name: KEY, valueFrom: {secretKeyRef: {name: heart, key: key}}}
  ceOverrides: {extensions: {team: shop}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
"""


def test_a_container_source_runs_as_a_workload_with_k_sink() -> None:
    plan = ex.expand(_resources(BROKER, DLS, CONTAINER_SOURCE), RUNNER)
    (workload,) = [r for r in plan.derived if r["metadata"]["name"] == "containersource-heart"]
    spec = workload["spec"]
    assert spec["command"] == ["python", "beat.py"] and spec["args"] == ["--fast"]
    assert spec["serviceAccount"] == "heart"
    env = {e["name"]: e.get("value") for e in spec["env"]}
    # A Secret's key stays a reference: the control plane reads it for the node agents.
    (key,) = [e for e in spec["env"] if e["name"] == "KEY"]
    assert key["valueFrom"] == {"secretKeyRef": {"name": "heart", "key": "key", "optional": False}}
    assert env["K_SINK"] == cfg.broker_url("default", "default")
    assert env["K_CE_OVERRIDES"] == '{"extensions": {"team": "shop"}}'
    assert env["RATE"] == "1"
    assert workload["metadata"]["labels"]["sources.knative.dev/containerSource"] == "heart"
    assert parse_object({"apiVersion": "v1", "kind": "List", "items": plan.derived}, "d").ok


def test_a_container_source_needs_a_command() -> None:
    text = CONTAINER_SOURCE.replace("        command: [python, beat.py]\n", "")
    assert errors(text) == [
        "events.yaml: document 0 (line 2): ContainerSource/default/heart: "
        "spec.template.spec.containers[0].command: is required here: Ami runs the "
        "container's command (its image is kept for Kubernetes)"
    ]


def config_nats(data: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-nats, namespace: "
        f"knative-eventing}}\ndata: {data}\n"
    )


def test_a_nats_cluster_takes_the_place_of_the_embedded_server() -> None:
    cluster = config_nats(
        "{servers: 'nats://127.0.0.1:4222, nats://127.0.0.1:4223', replicas: '3', "
        "credentials: nats.creds}"
    )
    plan = ex.expand(_resources(BROKER, DLS, cluster), cfg.Runner("/usr/bin/python3"))
    assert plan.problems == []
    assert plan.config.replicas == 3 and len(plan.config.brokers) == 1
    env = {e["name"]: e["value"] for e in plan.derived[0]["spec"]["env"]}
    assert env[cfg.NATS_URL_ENV] == "nats://127.0.0.1:4222,nats://127.0.0.1:4223"
    assert env[cfg.NATS_CREDENTIALS_ENV] == "nats.creds"
    assert cfg.BrokerConfig.decode(env[cfg.CONFIG_ENV]).replicas == 3


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ("{replicas: '3'}", "data.servers", "is required"),
        ("{servers: 'http://x:1'}", "data.servers", "is not a nats://HOST:PORT URL"),
        ("{servers: 'nats://x'}", "data.servers", "is not a nats://HOST:PORT URL"),
        ("{servers: 'nats://x:1', replicas: '7'}", "data.replicas", "from 1 to 5"),
    ],
)
def test_a_wrong_nats_cluster(data: str, field: str, message: str) -> None:
    plan = ex.expand(_resources(BROKER, DLS, config_nats(data)), RUNNER)
    (problem,) = plan.problems
    assert problem.ref == "ConfigMap/knative-eventing/config-nats"
    assert problem.field == field and message in problem.message
    assert plan.config.brokers == () and plan.derived == []


def br_defaults(text: str) -> str:
    body = textwrap.indent(textwrap.dedent(text).strip(), "    ")
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-br-defaults, namespace: "
        f"knative-eventing}}\ndata:\n  default-br-config: |\n{body}\n"
    )


PLAIN_BROKER = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: plain}\n"
PLAIN_TRIGGER = trigger("broker: plain\nsubscriber: {uri: 'http://x/'}", "t")


def delivery_of(*texts: str) -> tuple[int, str, float]:
    plan = ex.expand(_resources(PLAIN_BROKER, PLAIN_TRIGGER, *texts), RUNNER)
    assert plan.problems == [], plan.problems
    d = plan.config.triggers[0].delivery
    return d.retry, d.policy, d.delay_s


def test_a_broker_without_delivery_takes_config_br_defaults() -> None:
    assert delivery_of() == (10, "exponential", 0.2)  # Knative's shipped default
    cluster = """
    clusterDefault:
      brokerClass: MTChannelBasedBroker
      delivery: {retry: 2, backoffPolicy: linear, backoffDelay: PT1S}
    """
    assert delivery_of(br_defaults(cluster)) == (2, "linear", 1.0)
    per_namespace = (
        cluster
        + """
    namespaceDefaults:
      default:
        delivery: {retry: 5, backoffDelay: PT0.5S}
    """
    )
    assert delivery_of(br_defaults(per_namespace)) == (5, "exponential", 0.5)
    # The ConfigMap without a delivery: no retries, as in Knative.
    assert delivery_of(br_defaults("clusterDefault: {brokerClass: MTChannelBasedBroker}"))[0] == 0


def test_a_wrong_config_br_defaults() -> None:
    bad = br_defaults("clusterDefault:\n  delivery: {backoffDelay: 2s}")
    plan = ex.expand(_resources(PLAIN_BROKER, PLAIN_TRIGGER, bad), RUNNER)
    (problem,) = plan.problems
    assert problem.ref == "ConfigMap/knative-eventing/config-br-defaults"
    assert "ISO-8601" in problem.message


def test_several_broker_processes() -> None:
    cm = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-ami-broker, namespace: "
        "knative-eventing}\ndata: {processes: '%s'}\n"
    )
    plan = ex.expand(_resources(BROKER, DLS, cm % "3"), RUNNER)
    assert plan.derived[0]["spec"]["replicas"] == 3
    plan = ex.expand(_resources(BROKER, DLS, cm % "99"), RUNNER)
    (problem,) = plan.problems
    assert problem.field == "data.processes" and "from 1 to 8" in problem.message
    assert plan.derived[0]["spec"]["replicas"] == 1


def test_retry_after_max_reaches_the_trigger_and_a_bad_one_is_refused() -> None:
    t = trigger(
        "broker: plain\nsubscriber: {uri: 'http://x/'}\ndelivery: {retry: 2, retryAfterMax: PT30S}",
        "t",
    )
    plan = ex.expand(_resources(PLAIN_BROKER, t), RUNNER)
    assert plan.problems == []
    assert plan.config.triggers[0].delivery.retry_after_max_s == 30.0
    result = parse_documents(
        trigger("broker: plain\nsubscriber: {uri: 'http://x/'}\ndelivery: {retryAfterMax: 30s}"),
        "t.yaml",
    )
    (error,) = result.errors
    assert "spec.delivery.retryAfterMax" in str(error) and "ISO-8601" in str(error)
