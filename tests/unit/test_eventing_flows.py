"""Channels, Subscriptions, Sequences and Parallels: what each becomes (streams and
durable subscriptions on them, replies chained as Knative chains them), and their
errors."""

from __future__ import annotations

import pytest

from amimesh.eventing import config as cfg
from amimesh.eventing import expand as ex
from amimesh.eventing.addressing import EventingPlan
from amimesh.resources import parse_documents

RUNNER = cfg.Runner("/usr/bin/python3", "nats://127.0.0.1:4222", "/state/nats/credentials")


def svc(name: str) -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n"
        "spec: {selector: {app: x}, ports: [{port: 80}]}\n"
    )


def plan_of(*texts: str) -> EventingPlan:
    result = parse_documents("\n---\n".join(texts), "x.yaml")
    assert result.errors == [], result.errors
    return ex.expand(result.resources, RUNNER)


def url(name: str) -> str:
    return f"http://{name}.default.svc.cluster.local"


CHANNEL = "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {name: orders}\n"
SUBSCRIPTION = """
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: to-a}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {ref: {apiVersion: v1, kind: Service, name: a}}
  reply: {ref: {apiVersion: v1, kind: Service, name: b}}
"""


def test_a_channel_and_its_subscription() -> None:
    plan = plan_of(CHANNEL, SUBSCRIPTION, svc("a"), svc("b"))
    (channel,) = plan.config.brokers
    assert (channel.kind, channel.stream, channel.subject) == (
        "channel",
        "KNC_default_orders",
        "knc.default.orders",
    )
    assert plan.status[("InMemoryChannel", "default", "orders")]["address"]["url"] == (
        "http://broker-ingress.knative-eventing.svc.cluster.local/channels/default/orders"
    )
    (sub,) = plan.config.triggers
    assert (sub.subscription, sub.broker, sub.durable) == (True, "orders", "S_to-a")
    assert (sub.subscriber, sub.reply) == (url("a"), url("b"))
    assert sub.delivery.retry == 0  # a subscription without a delivery is not retried
    assert cfg.BrokerConfig.decode(plan.config.encode()) == plan.config


def test_a_sequence_chains_its_steps() -> None:
    seq = """
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: order}
spec:
  steps:
  - {ref: {apiVersion: v1, kind: Service, name: a}}
  - {ref: {apiVersion: v1, kind: Service, name: b}, delivery: {retry: 2}}
  reply: {ref: {apiVersion: v1, kind: Service, name: done}}
"""
    plan = plan_of(seq, svc("a"), svc("b"), svc("done"))
    names = [b.name for b in plan.config.brokers]
    assert names == ["order-kn-sequence-0", "order-kn-sequence-1"]
    first, second = plan.config.triggers
    assert (first.broker, first.subscriber, first.reply) == (
        "order-kn-sequence-0",
        url("a"),
        plan.config.brokers[1].url,
    )
    assert (second.subscriber, second.reply, second.delivery.retry) == (url("b"), url("done"), 2)
    assert plan.status[("Sequence", "default", "order")]["address"]["url"].endswith(
        "/channels/default/order-kn-sequence-0"
    )


def test_a_parallel_filters_into_branches() -> None:
    par = """
apiVersion: flows.knative.dev/v1
kind: Parallel
metadata: {name: split}
spec:
  branches:
  - filter: {ref: {apiVersion: v1, kind: Service, name: only-big}}
    subscriber: {ref: {apiVersion: v1, kind: Service, name: a}}
  - subscriber: {ref: {apiVersion: v1, kind: Service, name: b}}
    reply: {ref: {apiVersion: v1, kind: Service, name: other}}
  reply: {ref: {apiVersion: v1, kind: Service, name: done}}
"""
    plan = plan_of(par, *(svc(n) for n in ("only-big", "a", "b", "other", "done")))
    ingress, branch0, branch1 = plan.config.brokers
    assert [c.name for c in plan.config.brokers] == [
        "split-kn-parallel",
        "split-kn-parallel-0",
        "split-kn-parallel-1",
    ]
    by_name = {t.name: t for t in plan.config.triggers}
    f0 = by_name["split-kn-parallel-filter-0"]
    assert (f0.broker, f0.subscriber, f0.reply) == (ingress.name, url("only-big"), branch0.url)
    f1 = by_name["split-kn-parallel-filter-1"]
    assert (f1.subscriber, f1.reply) == (branch1.url, "")  # no filter: all go on
    assert by_name["split-kn-parallel-0"].reply == url("done")
    assert by_name["split-kn-parallel-1"].reply == url("other")


def test_a_trigger_to_a_sequence() -> None:
    text = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t}
spec:
  broker: default
  subscriber: {ref: {apiVersion: flows.knative.dev/v1, kind: Sequence, name: order}}
---
apiVersion: flows.knative.dev/v1
kind: Sequence
metadata: {name: order}
spec:
  steps: [{uri: "http://a.default.svc.cluster.local"}]
"""
    plan = plan_of(text)
    (trigger,) = [t for t in plan.config.triggers if not t.subscription]
    assert trigger.subscriber.endswith("/channels/default/order-kn-sequence-0")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SUBSCRIPTION,
            'Subscription/default/to-a: spec.channel: no InMemoryChannel "orders" in namespace '
            '"default"',
        ),
        (
            CHANNEL
            + "---\n"
            + SUBSCRIPTION.replace("name: b}", "name: nope}")
            + "---\n"
            + svc("a"),
            'Subscription/default/to-a: spec.reply: no Service "nope" in namespace "default"',
        ),
    ],
)
def test_problems(text: str, expected: str) -> None:
    result = parse_documents(text, "x.yaml")
    assert result.errors == []
    assert [str(p) for p in ex.reference_problems(result.resources)] == [expected]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SUBSCRIPTION.replace("kind: InMemoryChannel", "kind: Broker"),
            "spec.channel: must name a Channel, InMemoryChannel or NatsJetStreamChannel",
        ),
        (
            "apiVersion: flows.knative.dev/v1\nkind: Sequence\nmetadata: {name: s}\n"
            "spec: {steps: []}\n",
            "spec.steps:",
        ),
        (
            "apiVersion: flows.knative.dev/v1\nkind: Parallel\nmetadata: {name: p}\n"
            "spec: {branches: [{filter: {uri: 'http://f/'}}]}\n",
            "spec.branches[0].subscriber: is required",
        ),
    ],
)
def test_errors(text: str, message: str) -> None:
    errors = [str(e) for e in parse_documents(text, "x.yaml").errors]
    assert any(message in e for e in errors), errors


def test_a_broker_name_must_be_a_stream_name() -> None:
    text = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: a.b}\n"
    (error,) = parse_documents(text, "x.yaml").errors
    assert "Broker/default/a.b: metadata.name: must be a DNS-1035 label" in str(error)


def test_an_eventing_natss_channel_is_a_channel() -> None:
    natss = """
apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
metadata: {name: orders}
spec:
  stream: {config: {retention: Limits, maxBytes: 1000000000, replicas: 1}}
  consumerConfigTemplate: {deliverPolicy: New, maxDeliver: 1}
"""
    sub = SUBSCRIPTION.replace(
        "{apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}",
        "{apiVersion: messaging.knative.dev/v1alpha1, kind: NatsJetStreamChannel, name: orders}",
    )
    plan = plan_of(natss, sub, svc("a"), svc("b"))
    assert [c.stream for c in plan.config.brokers] == ["KNC_default_orders"]
    assert plan.config.triggers[0].subscriber == url("a")
