"""Knative Eventing checks beyond the schema, after Knative's webhook
(knative/eventing `pkg/apis/eventing/v1/trigger_validation.go`, `broker_validation.go`,
`pkg/apis/duck/v1/delivery_types.go`, `pkg/apis/sources/v1/*_validation.go`).

A Trigger naming a Broker nobody defines validates here (one document alone cannot
know); the eventing expansion says so, as Knative's `BrokerDoesNotExist`, and `ami
validate` reports it over its files (`eventing.expand.reference_problems`).
"""

from __future__ import annotations

import base64
import binascii
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

from amimesh.resources import cron
from amimesh.resources import knative_eventing as ke
from amimesh.resources import knative_messaging as km
from amimesh.resources.checks_serving import dns_1035_problem
from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import show

# CloudEvents attribute names: lowercase letters and digits (Knative checks the same).
_ATTRIBUTE = re.compile(r"^[a-z0-9]+$")
# A destination `ref` Ami can address: (apiVersion group, kind).
DESTINATION_KINDS = {
    ("serving.knative.dev", "Service"): "a Knative Service",
    ("", "Service"): "a Kubernetes Service",
    ("eventing.knative.dev", "Broker"): "a Broker",
    ("messaging.knative.dev", "Channel"): "a Channel",
    ("messaging.knative.dev", "InMemoryChannel"): "an InMemoryChannel",
    ("messaging.knative.dev", "NatsJetStreamChannel"): "a NatsJetStreamChannel",
    ("flows.knative.dev", "Sequence"): "a Sequence",
    ("flows.knative.dev", "Parallel"): "a Parallel",
}
CHANNEL_KINDS = frozenset({"Channel", "InMemoryChannel", "NatsJetStreamChannel"})


def _stream_name_issues(name: str) -> Iterator[Issue]:
    """A Broker's or a channel's name names its JetStream stream and subject: a
    DNS-1035 label (no `.`), as Knative's addresses want it anyway."""
    problem = dns_1035_problem(name)
    if problem is not None:
        yield Issue(("metadata", "name"), problem)


def check_broker(broker: ke.Broker) -> Iterator[Issue]:
    yield from _stream_name_issues(broker.name)
    config = broker.spec.config
    if config is not None and (config.kind != "ConfigMap" or config.apiVersion not in ("", "v1")):
        got = f"{config.apiVersion or '?'} {config.kind}"
        yield Issue(("spec", "config"), f"must name a v1 ConfigMap, got {got}")
    if broker.spec.delivery is not None:
        yield from delivery_issues(broker.spec.delivery, ("spec", "delivery"))


def check_trigger(trigger: ke.Trigger) -> Iterator[Issue]:
    spec = trigger.spec
    problem = dns_1035_problem(spec.broker)
    if problem is not None:
        yield Issue(("spec", "broker"), problem)
    if spec.filter is not None:
        yield from _attribute_issues(spec.filter.attributes, ("spec", "filter", "attributes"))
    for i, f in enumerate(spec.filters):
        yield from filter_issues(f, ("spec", "filters", i))
    yield from destination_issues(spec.subscriber, ("spec", "subscriber"))
    if spec.delivery is not None:
        yield from delivery_issues(spec.delivery, ("spec", "delivery"))


def check_ping_source(src: ke.PingSource) -> Iterator[Issue]:
    spec = src.spec
    problem = cron_problem(spec.schedule)
    if problem is not None:
        yield Issue(("spec", "schedule"), problem)
    if spec.timezone:
        problem = timezone_problem(spec.timezone)
        if problem is not None:
            yield Issue(("spec", "timezone"), problem)
    if spec.data is not None and spec.dataBase64 is not None:
        yield Issue(("spec", "dataBase64"), "set data or dataBase64, not both")
    if spec.dataBase64 is not None:
        try:
            base64.b64decode(spec.dataBase64, validate=True)
        except (binascii.Error, ValueError):
            yield Issue(("spec", "dataBase64"), f"must be base64, got {show(spec.dataBase64)}")
    yield from destination_issues(spec.sink, ("spec", "sink"))
    if spec.ceOverrides is not None:
        yield from _extension_issues(spec.ceOverrides.extensions, ("spec", "ceOverrides"))


# What a SinkBinding's subject can be: Ami's Workload, the Kubernetes kinds it stands
# for, a Knative Service.
BINDABLE = frozenset(
    {
        ("ami.dev", "Workload"),
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("batch", "Job"),
        ("serving.knative.dev", "Service"),
    }
)


def check_sink_binding(binding: ke.SinkBinding) -> Iterator[Issue]:
    subject = binding.spec.subject
    if (subject.name is None) == (subject.selector is None):
        yield Issue(("spec", "subject"), "must set name or selector, not both")
    if (subject.apiVersion.rpartition("/")[0], subject.kind) not in BINDABLE:
        yield Issue(
            ("spec", "subject"),
            f"Ami binds Workloads, Deployments, StatefulSets, DaemonSets, Jobs and Knative "
            f"Services, got {subject.kind} ({subject.apiVersion})",
        )
    yield from destination_issues(binding.spec.sink, ("spec", "sink"))
    if binding.spec.ceOverrides is not None:
        yield from _extension_issues(binding.spec.ceOverrides.extensions, ("spec", "ceOverrides"))


def check_api_server_source(src: ke.ApiServerSource) -> Iterator[Issue]:
    yield from _stream_name_issues(src.name)
    for i, f in enumerate(src.spec.filters):
        yield from filter_issues(f, ("spec", "filters", i))
    yield from destination_issues(src.spec.sink, ("spec", "sink"))
    if src.spec.ceOverrides is not None:
        yield from _extension_issues(src.spec.ceOverrides.extensions, ("spec", "ceOverrides"))


def check_container_source(src: ke.ContainerSource) -> Iterator[Issue]:
    container = src.spec.template.spec.containers[0]
    if not container.command:
        yield Issue(
            ("spec", "template", "spec", "containers", 0, "command"),
            "is required here: Ami runs the container's command (its image is kept for Kubernetes)",
        )
    for i, c in enumerate(src.spec.template.spec.containers):
        if c.livenessProbe is not None:
            yield Issue(
                ("spec", "template", "spec", "containers", i, "livenessProbe"),
                "is not supported by Ami yet on a ContainerSource (a Knative Service's "
                "container takes one)",
            )
    yield from destination_issues(src.spec.sink, ("spec", "sink"))
    if src.spec.ceOverrides is not None:
        yield from _extension_issues(src.spec.ceOverrides.extensions, ("spec", "ceOverrides"))


def check_channel(channel: km.AnyChannel) -> Iterator[Issue]:
    yield from _stream_name_issues(channel.name)
    if channel.spec.delivery is not None:
        yield from delivery_issues(channel.spec.delivery, ("spec", "delivery"))


def check_subscription(sub: km.Subscription) -> Iterator[Issue]:
    ref = sub.spec.channel
    group = ref.apiVersion.rpartition("/")[0]
    if group != km.MESSAGING_GROUP or ref.kind not in CHANNEL_KINDS:
        yield Issue(
            ("spec", "channel"),
            f"must name a Channel, InMemoryChannel or NatsJetStreamChannel "
            f"({km.MESSAGING_GROUP}), got "
            f"{ref.kind} ({ref.apiVersion or 'no apiVersion'})",
        )
    if sub.spec.subscriber is None and sub.spec.reply is None:
        yield Issue(("spec",), "must set subscriber or reply")
    for name in ("subscriber", "reply"):
        dest = getattr(sub.spec, name)
        if dest is not None:
            yield from destination_issues(dest, ("spec", name))
    if sub.spec.delivery is not None:
        yield from delivery_issues(sub.spec.delivery, ("spec", "delivery"))


def check_sequence(seq: km.Sequence) -> Iterator[Issue]:
    yield from _stream_name_issues(seq.name)
    for i, step in enumerate(seq.spec.steps):
        yield from destination_issues(step, ("spec", "steps", i))
        if step.delivery is not None:
            yield from delivery_issues(step.delivery, ("spec", "steps", i, "delivery"))
    if seq.spec.reply is not None:
        yield from destination_issues(seq.spec.reply, ("spec", "reply"))


def check_parallel(par: km.Parallel) -> Iterator[Issue]:
    yield from _stream_name_issues(par.name)
    for i, branch in enumerate(par.spec.branches):
        loc: Loc = ("spec", "branches", i)
        for name in ("filter", "subscriber", "reply"):
            dest = getattr(branch, name)
            if dest is not None:
                yield from destination_issues(dest, (*loc, name))
        if branch.delivery is not None:
            yield from delivery_issues(branch.delivery, (*loc, "delivery"))
    if par.spec.reply is not None:
        yield from destination_issues(par.spec.reply, ("spec", "reply"))


def dialects_of(f: ke.SubscriptionsAPIFilter) -> list[str]:
    """The dialects a filter object sets, in Knative's order."""
    found = [name for name in ("exact", "prefix", "suffix", "all", "any") if getattr(f, name)]
    if f.not_ is not None:
        found.append("not")
    if f.cesql is not None:
        found.append("cesql")
    return found


def filter_issues(f: ke.SubscriptionsAPIFilter, loc: Loc) -> Iterator[Issue]:
    dialects = dialects_of(f)
    if len(dialects) > 1:
        yield Issue(
            loc,
            f"sets {len(dialects)} dialects ({', '.join(dialects)}); a filter object has "
            "exactly one: put them in separate filters (all must pass) or under `all`",
        )
    for name in ("exact", "prefix", "suffix"):
        values: Mapping[str, str] = getattr(f, name)
        yield from _attribute_issues(values, (*loc, name), allow_any=False)
    for name in ("all", "any"):
        for i, inner in enumerate(getattr(f, name)):
            yield from filter_issues(inner, (*loc, name, i))
    if f.not_ is not None:
        yield from filter_issues(f.not_, (*loc, "not"))


def _attribute_issues(
    values: Mapping[str, str], loc: Loc, *, allow_any: bool = True
) -> Iterator[Issue]:
    for name, value in values.items():
        if not _ATTRIBUTE.match(name):
            yield Issue(
                (*loc, name),
                f"an attribute name is lowercase letters and digits, got {show(name)}",
            )
        elif not value and not allow_any:
            yield Issue((*loc, name), "must not be empty")


def _extension_issues(values: Mapping[str, str], loc: Loc) -> Iterator[Issue]:
    for name in values:
        if not _ATTRIBUTE.match(name):
            yield Issue(
                (*loc, "extensions", name),
                f"an extension name is lowercase letters and digits, got {show(name)}",
            )


def destination_issues(dest: ke.Destination, loc: Loc) -> Iterator[Issue]:
    if dest.ref is not None:
        group = dest.ref.apiVersion.rpartition("/")[0]
        if (group, dest.ref.kind) not in DESTINATION_KINDS:
            known = ", ".join(
                f"{kind} ({grp or 'core'})" for grp, kind in sorted(DESTINATION_KINDS)
            )
            yield Issue(
                (*loc, "ref"),
                f"Ami cannot address {dest.ref.kind} ({dest.ref.apiVersion or 'no apiVersion'})"
                f" yet; a ref names one of: {known}",
            )
    if dest.uri:
        parts = urlsplit(dest.uri)
        if dest.ref is None and (parts.scheme not in ("http", "https") or not parts.hostname):
            yield Issue(
                (*loc, "uri"),
                f"must be an absolute http(s) URL without a ref, got {show(dest.uri)}",
            )
        elif dest.ref is not None and (parts.scheme or parts.netloc):
            yield Issue(
                (*loc, "uri"), f"with a ref, uri is a path (relative), got {show(dest.uri)}"
            )


def delivery_issues(delivery: ke.DeliverySpec, loc: Loc) -> Iterator[Issue]:
    if delivery.deadLetterSink is not None:
        yield from destination_issues(delivery.deadLetterSink, (*loc, "deadLetterSink"))


def cron_problem(schedule: str) -> str | None:
    """What is wrong with a PingSource schedule, if anything (`resources.cron`)."""
    try:
        parsed = cron.parse(schedule)
    except ValueError as e:
        return f'must be a cron schedule such as "*/2 * * * *": {e}; got {show(schedule)}'
    if parsed.timezone:
        return timezone_problem(parsed.timezone)
    return None


def timezone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return (
            f'is not a time zone Ami knows (an IANA name such as "Europe/Paris"), got {show(name)}'
        )
    return None
