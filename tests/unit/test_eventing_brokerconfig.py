"""A Broker's `spec.config` and `config-br-defaults`' class and config: the settings of
its stream, each mistake with its resource and field."""

from __future__ import annotations

import pytest

from amimesh.eventing import config as cfg
from amimesh.eventing import expand as ex
from amimesh.eventing.addressing import EventingPlan
from amimesh.resources import parse_documents

RUNNER = cfg.Runner(
    "/usr/bin/python3",
    "nats://127.0.0.1:4222",
    "/state/nats/credentials",
    secrets_dir="/state/eventing/credentials",
)
BROKER = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: orders}
spec:
  config: {apiVersion: v1, kind: ConfigMap, name: orders-nats}
"""
PLAIN = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: orders}\n"
TRIGGER = """
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t}
spec:
  broker: orders
  subscriber: {uri: "http://a.default.svc.cluster.local/"}
"""


def configmap(name: str, data: str, namespace: str = "default") -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"data: {data}\n"
    )


def plan_of(*texts: str) -> EventingPlan:
    result = parse_documents("\n---\n".join(texts), "x.yaml")
    assert result.errors == [], result.errors
    return ex.expand(result.resources, RUNNER)


def entry(plan: EventingPlan, name: str = "orders") -> cfg.BrokerEntry:
    found = plan.config.broker("default", name)
    assert found is not None
    return found


def test_a_brokers_config_makes_its_stream() -> None:
    plan = plan_of(
        BROKER,
        TRIGGER,
        configmap(
            "orders-nats",
            "{replicas: '3', retention: limits, maxAge: P7D, maxBytes: '2097152', "
            "servers: 'nats://10.0.0.1:4222, nats://10.0.0.2:4222', credentials: n.creds}",
        ),
    )
    assert plan.problems == []
    b = entry(plan)
    assert (b.servers, b.credentials) == ("nats://10.0.0.1:4222,nats://10.0.0.2:4222", "n.creds")
    assert (b.replicas, b.retention, b.max_age_s, b.max_bytes) == (3, "limits", 7 * 86400, 2097152)
    assert [t.name for t in plan.config.triggers] == ["t"]
    # What the broker process gets back from its environment is the same.
    assert cfg.BrokerConfig.decode(plan.config.encode()).broker("default", "orders") == b


def test_without_a_config_a_broker_has_knatives_defaults_and_the_meshs_server() -> None:
    b = entry(plan_of(PLAIN))
    assert (b.servers, b.credentials, b.replicas, b.retention) == ("", "", 1, "interest")
    assert (b.max_age_s, b.max_bytes) == (0.0, 1 << 30)


def test_a_secret_gives_the_credential_and_the_control_plane_writes_it() -> None:
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: nats-auth}\n"
        "stringData: {user: u, password: p}\n"
    )
    plan = plan_of(
        BROKER,
        configmap(
            "orders-nats", "{servers: 'nats://10.0.0.1:4222', auth.secret.ref.name: nats-auth}"
        ),
        secret,
    )
    assert plan.problems == []
    assert entry(plan).credentials == "/state/eventing/credentials/default.nats-auth"
    assert plan.secrets == {"default.nats-auth": "u:p"}
    # The secret is in no derived resource (the broker's Workload names the file).
    assert "u:p" not in str(plan.derived)


def test_config_br_defaults_gives_a_namespace_its_class_and_config() -> None:
    defaults = configmap(
        "config-br-defaults",
        "{default-br-config: '"
        "{clusterDefault: {brokerClass: MTChannelBasedBroker}, "
        "namespaceDefaults: {default: {brokerClass: NatsJetStream, apiVersion: v1, "
        "kind: ConfigMap, name: shared-nats, namespace: knative-eventing, "
        "delivery: {retry: 2}}}}'}",
        "knative-eventing",
    )
    plan = plan_of(
        PLAIN,
        TRIGGER,
        defaults,
        configmap("shared-nats", "{replicas: '1', maxAge: PT1H}", "knative-eventing"),
    )
    assert plan.problems == []
    assert entry(plan).max_age_s == 3600
    status = plan.status[("Broker", "default", "orders")]
    assert status["annotations"] == {"eventing.knative.dev/broker.class": "NatsJetStream"}
    assert plan.config.triggers[0].delivery.retry == 2
    # A Broker's own config and class win over the defaults.
    plan = plan_of(
        BROKER.replace(
            "metadata: {name: orders}",
            "metadata: {name: orders, annotations: {eventing.knative.dev/broker.class: Mine}}",
        ),
        defaults,
        configmap("shared-nats", "{maxAge: PT1H}", "knative-eventing"),
        configmap("orders-nats", "{maxAge: PT2H}"),
    )
    assert entry(plan).max_age_s == 7200
    status = plan.status[("Broker", "default", "orders")]
    assert status["annotations"] == {"eventing.knative.dev/broker.class": "Mine"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            "{replicas: '7'}",
            "data.replicas: must be a whole number from 1 to 5, got '7'",
        ),
        (
            "{retention: forever}",
            "data.retention: must be interest or limits, got 'forever'",
        ),
        (
            "{maxAge: 7d}",
            "data.maxAge: must be an ISO-8601 duration",
        ),
        (
            "{maxBytes: '10'}",
            "data.maxBytes: must be a number of bytes from 1 MiB to 1 TiB, got '10'",
        ),
        (
            "{servers: 'http://x:1'}",
            "data.servers: 'http://x:1' is not a nats://HOST:PORT URL",
        ),
        ("{credentials: a}", "data.credentials: needs servers"),
        (
            "{servers: 'nats://x:1', auth.secret.ref.name: gone}",
            'data.auth.secret.ref.name: no Secret "gone" in namespace "default"',
        ),
        (
            "{bootstrap.servers: x}",
            "data.bootstrap.servers: is not a broker setting",
        ),
    ],
)
def test_a_wrong_config_is_an_error_of_its_field_and_the_broker_is_not_ready(
    data: str, expected: str
) -> None:
    plan = plan_of(BROKER, TRIGGER, configmap("orders-nats", data))
    first = str(plan.problems[0])
    assert first.startswith("ConfigMap/default/orders-nats: " + expected), first
    assert plan.config.broker("default", "orders") is None
    assert plan.config.triggers == ()
    status = plan.status[("Broker", "default", "orders")]
    assert status["conditions"][0]["status"] == "False"
    assert status["conditions"][0]["reason"] == "BrokerConfigInvalid"
    trigger = plan.status[("Trigger", "default", "t")]
    assert trigger["conditions"][0]["reason"] == "BrokerNotReady"


def test_a_missing_config_and_bad_defaults() -> None:
    (problem,) = ex.reference_problems(parse_documents(BROKER, "x.yaml").resources)
    assert str(problem) == (
        'Broker/default/orders: spec.config: no ConfigMap "orders-nats" in namespace "default"'
    )
    assert problem.reason == "BrokerConfigNotFound"
    defaults = configmap(
        "config-br-defaults",
        "{default-br-config: '{clusterDefault: {kind: Secret, name: x}}'}",
        "knative-eventing",
    )
    text = PLAIN
    (problem,) = ex.reference_problems(
        parse_documents(text + "---\n" + defaults, "x.yaml").resources
    )
    assert str(problem).startswith(
        "ConfigMap/knative-eventing/config-br-defaults: data.default-br-config: "
        "clusterDefault.kind: a broker's config is a v1 ConfigMap, got ? Secret"
    )


def test_a_config_of_another_kind_is_refused_when_loaded() -> None:
    text = BROKER.replace("kind: ConfigMap", "kind: Secret")
    (error,) = parse_documents(text, "b.yaml").errors
    assert "b.yaml" in str(error)
    assert "Broker/default/orders: spec.config: must name a v1 ConfigMap, got v1 Secret" in str(
        error
    )


def test_an_entry_of_config_br_defaults_with_a_key_ami_does_not_read_is_an_error() -> None:
    defaults = configmap(
        "config-br-defaults",
        "{default-br-config: '{namespaceDefaults: {default: {brokerClasses: {}}}}'}",
        "knative-eventing",
    )
    (problem,) = ex.reference_problems(
        parse_documents(PLAIN + "---\n" + defaults, "x.yaml").resources
    )
    assert str(problem).startswith(
        "ConfigMap/knative-eventing/config-br-defaults: data.default-br-config: "
        "namespaceDefaults.default.brokerClasses: is not supported here"
    )
