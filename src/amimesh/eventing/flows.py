"""Channels, Subscriptions, Sequences, Parallels and ApiServerSources' channels, as
the broker process runs them: a stream per channel, a durable subscription per
Subscription (and per step or branch), replies chained as Knative chains them. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from amimesh.eventing.addressing import (
    NO_SERVER,
    EventingPlan,
    Problem,
    addressed,
    destination_url,
    ready_status,
)
from amimesh.eventing.config import BrokerEntry, TriggerEntry, channel_url
from amimesh.eventing.delivery import Delivery, resolve
from amimesh.resources import knative_eventing as ke
from amimesh.resources import knative_messaging as km
from amimesh.resources.meta import Resource

NO_RETRIES = Delivery(retry=0)  # a channel's subscription without a delivery, as in Knative


def channels(
    resources: Sequence[Resource], plan: EventingPlan, server: bool
) -> tuple[tuple[BrokerEntry, ...], tuple[TriggerEntry, ...]]:
    """The channels (written, and those of Sequences and Parallels) and their
    subscriptions; each resource's status."""
    channels: list[BrokerEntry] = []
    subs: list[TriggerEntry] = []
    written: dict[tuple[str, str], km.AnyChannel] = {
        (c.namespace, c.name): c for c in resources if isinstance(c, km.AnyChannel)
    }
    for (ns, name), c in sorted(written.items()):
        channels.append(BrokerEntry(ns, name, "channel"))
        plan.status[c.key] = addressed(server, channel_url(ns, name))
    for r in resources:
        if isinstance(r, km.Subscription):
            entry, problem = _subscription(r, written, resources)
            if problem is not None:
                plan.problems.append(problem)
                plan.status[r.key] = ready_status(False, problem.reason, problem.message)
                continue
            assert entry is not None
            subs.append(entry)
            plan.status[r.key] = {
                **ready_status(server, "NoServer", NO_SERVER),
                "physicalSubscription": {
                    "subscriberUri": entry.subscriber,
                    "replyUri": entry.reply,
                },
            }
        elif isinstance(r, ke.ApiServerSource):
            # Its events (the control plane's, `eventing.apiserver`) go through a
            # channel of its own to its sink: stored, retried as a broker's are.
            sink = destination_url(r.spec.sink, r.namespace, resources)
            if sink.startswith("!"):
                problem = Problem(r.ref, "spec.sink", sink[1:], "SinkNotFound")
                plan.problems.append(problem)
                plan.status[r.key] = ready_status(False, problem.reason, problem.message)
                continue
            name = f"apiserversource-{r.name}"
            channels.append(BrokerEntry(r.namespace, name, "channel"))
            subs.append(TriggerEntry(r.namespace, name, name, sink, Delivery(), subscription=True))
            plan.status[r.key] = {**ready_status(server, "NoServer", NO_SERVER), "sinkUri": sink}
        elif isinstance(r, km.Sequence | km.Parallel):
            made = (
                _sequence(r, resources) if isinstance(r, km.Sequence) else _parallel(r, resources)
            )
            if isinstance(made, Problem):
                plan.problems.append(made)
                plan.status[r.key] = ready_status(False, made.reason, made.message)
                continue
            chans, parts = made
            channels += chans
            subs += parts
            plan.status[r.key] = addressed(server, chans[0].url)
    return tuple(channels), tuple(subs)


def _delivery(
    spec: ke.DeliverySpec | None,
    namespace: str,
    resources: Sequence[Resource],
    ref: str,
    field: str,
) -> Delivery | Problem:
    if spec is None:
        return NO_RETRIES
    dead_letter = ""
    if spec.deadLetterSink is not None:
        dead_letter = destination_url(spec.deadLetterSink, namespace, resources)
        if dead_letter.startswith("!"):
            reason = "DeadLetterSinkResolveFailed"
            return Problem(ref, f"{field}.deadLetterSink", dead_letter[1:], reason)
    return resolve(spec.model_dump(mode="json", exclude_none=True, by_alias=True), dead_letter)


def _subscription(
    sub: km.Subscription,
    channels: Mapping[tuple[str, str], km.AnyChannel],
    resources: Sequence[Resource],
) -> tuple[TriggerEntry | None, Problem | None]:
    ns, spec = sub.namespace, sub.spec
    ref = spec.channel
    channel = channels.get((ref.namespace or ns, ref.name))
    if channel is None or channel.KIND != ref.kind:
        message = f'no {ref.kind} "{ref.name}" in namespace "{ref.namespace or ns}"'
        return None, Problem(sub.ref, "spec.channel", message, "ChannelDoesNotExist")
    urls: dict[str, str] = {}
    for name in ("subscriber", "reply"):
        dest = getattr(spec, name)
        if dest is None:
            continue
        url = destination_url(dest, ns, resources)
        if url.startswith("!"):
            return None, Problem(sub.ref, f"spec.{name}", url[1:], f"{name.title()}ResolveFailed")
        urls[name] = url
    delivery = _delivery(
        spec.delivery or channel.spec.delivery, ns, resources, sub.ref, "spec.delivery"
    )
    if isinstance(delivery, Problem):
        return None, delivery
    # Without a subscriber, events go straight to the reply.
    subscriber = urls.get("subscriber") or urls["reply"]
    reply = urls.get("reply", "") if "subscriber" in urls else ""
    entry = TriggerEntry(
        ns, sub.name, channel.name, subscriber, delivery, subscription=True, reply=reply
    )
    return entry, None


Made = tuple[list[BrokerEntry], list[TriggerEntry]] | Problem


def _sequence(seq: km.Sequence, resources: Sequence[Resource]) -> Made:
    """Knative's: a channel per step (`NAME-kn-sequence-I`), each step subscribed to
    its channel, its reply into the next one; the last step's to the Sequence's reply."""
    ns, steps = seq.namespace, seq.spec.steps
    names = [f"{seq.name}-kn-sequence-{i}" for i in range(len(steps))]
    channels = [BrokerEntry(ns, n, "channel") for n in names]
    last_reply = ""
    if seq.spec.reply is not None:
        last_reply = destination_url(seq.spec.reply, ns, resources)
        if last_reply.startswith("!"):
            return Problem(seq.ref, "spec.reply", last_reply[1:], "ReplyResolveFailed")
    subs: list[TriggerEntry] = []
    for i, step in enumerate(steps):
        url = destination_url(step, ns, resources)
        if url.startswith("!"):
            return Problem(seq.ref, f"spec.steps[{i}]", url[1:], "SubscriberResolveFailed")
        delivery = _delivery(step.delivery, ns, resources, seq.ref, f"spec.steps[{i}].delivery")
        if isinstance(delivery, Problem):
            return delivery
        reply = channels[i + 1].url if i + 1 < len(steps) else last_reply
        subs.append(
            TriggerEntry(ns, names[i], names[i], url, delivery, subscription=True, reply=reply)
        )
    return channels, subs


def _parallel(par: km.Parallel, resources: Sequence[Resource]) -> Made:
    """Knative's: an ingress channel (`NAME-kn-parallel`) and a channel per branch
    (`NAME-kn-parallel-I`); each branch's filter is subscribed to the ingress channel
    (an event it replies with goes on, an empty answer drops it; no filter: every
    event goes on), and its subscriber to its channel, its reply to the branch's reply
    or the Parallel's."""
    ns = par.namespace
    ingress = BrokerEntry(ns, f"{par.name}-kn-parallel", "channel")
    channels = [ingress]
    subs: list[TriggerEntry] = []
    default_reply = ""
    if par.spec.reply is not None:
        default_reply = destination_url(par.spec.reply, ns, resources)
        if default_reply.startswith("!"):
            return Problem(par.ref, "spec.reply", default_reply[1:], "ReplyResolveFailed")
    for i, branch in enumerate(par.spec.branches):
        where = f"spec.branches[{i}]"
        channel = BrokerEntry(ns, f"{par.name}-kn-parallel-{i}", "channel")
        channels.append(channel)
        urls: dict[str, str] = {}
        for name in ("filter", "subscriber", "reply"):
            dest = getattr(branch, name)
            if dest is None:
                continue
            url = destination_url(dest, ns, resources)
            if url.startswith("!"):
                reason = f"{name.title()}ResolveFailed"
                return Problem(par.ref, f"{where}.{name}", url[1:], reason)
            urls[name] = url
        delivery = _delivery(branch.delivery, ns, resources, par.ref, f"{where}.delivery")
        if isinstance(delivery, Problem):
            return delivery
        filter_name = f"{par.name}-kn-parallel-filter-{i}"
        if "filter" in urls:
            first, then = urls["filter"], channel.url
        else:
            first, then = channel.url, ""
        subs.append(
            TriggerEntry(
                ns, filter_name, ingress.name, first, delivery, subscription=True, reply=then
            )
        )
        reply = urls.get("reply", default_reply)
        subs.append(
            TriggerEntry(
                ns,
                channel.name,
                channel.name,
                urls["subscriber"],
                delivery,
                subscription=True,
                reply=reply,
            )
        )
    return channels, subs
