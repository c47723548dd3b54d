"""Knative Eventing on the mesh, as a pure function: Brokers and Triggers in; the
broker's mesh resources, what its process runs, and Knative's status out.

    plan = expand(resources, runner=Runner(python, nats_url, credentials))
    plan.derived    # the broker's Workload and Service (knative-eventing/broker-ingress)
    plan.config     # the brokers and triggers its process serves (`BrokerConfig`)
    plan.status     # Knative's status of each Broker, Trigger and source
    plan.problems   # Triggers whose broker or subscriber is not there, sources' sinks

All brokers of a mesh share one process, as Knative's multi-tenant broker does: a
Workload `broker-ingress` in `knative-eventing` (service account
`mt-broker-ingress`, so AuthorizationPolicies name it as Knative's), with a sidecar
like any workload. Its Service answers at Knative's address,
`http://broker-ingress.knative-eventing.svc.cluster.local/NS/NAME`, and its
deliveries leave through its sidecar, so mTLS, AuthorizationPolicy and the metrics
apply to them. Each Broker is a JetStream stream, each Trigger a durable consumer.
The same process runs the PingSources (`eventing.ping`), its events leaving through
the same sidecar.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from amimesh.eventing.delivery import Delivery, resolve
from amimesh.resources import knative_eventing as ke
from amimesh.resources import knative_messaging as km
from amimesh.resources import knative_serving as ks
from amimesh.resources.kube import ConfigMap
from amimesh.resources.kube import Service as KubeService
from amimesh.resources.meta import Resource

NAMESPACE = "knative-eventing"
INGRESS = "broker-ingress"
INGRESS_HOST = f"{INGRESS}.{NAMESPACE}.svc.cluster.local"
SERVICE_ACCOUNT = "mt-broker-ingress"
INGRESS_PORT = 8080
CONFIG_ENV = "AMI_EVENTING_CONFIG"  # base64 of the JSON of `BrokerConfig`
NATS_URL_ENV = "AMI_NATS_URL"
NATS_CREDENTIALS_ENV = "AMI_NATS_CREDENTIALS"  # a file: `user:password`
BROKER_MODULE = "amimesh.eventing.broker"
# The mesh's NATS cluster, when it has one (else `ami up` runs one server):
# `servers` (comma-separated nats:// URLs), `credentials` (a file holding
# `user:password`, relative to the mesh's directory), `replicas` (of each stream).
NATS_CONFIG = "config-nats"
MAX_REPLICAS = 5
CLUSTER_DOMAIN = "svc.cluster.local"
EVENTING_LABEL = "eventing.knative.dev/broker"

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Runner:
    """How the broker process runs here: the Python that runs it, and the JetStream
    server it stores events in ("": the mesh has none, and no broker runs)."""

    python: str
    nats_url: str = ""
    credentials: str = ""  # the credential file's path


@dataclass(frozen=True)
class PingEntry:
    """A PingSource as the broker process runs it."""

    namespace: str
    name: str
    schedule: str
    timezone: str
    sink: str
    content_type: str = ""
    data: str = ""
    data_base64: str = ""
    extensions: Mapping[str, str] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"/apis/v1/namespaces/{self.namespace}/pingsources/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "extensions": dict(self.extensions)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PingEntry:
        return cls(**data)


@dataclass(frozen=True)
class BrokerEntry:
    """A Broker, or a channel (`kind` "channel": a Channel, an InMemoryChannel, or one
    a Sequence or Parallel is made of): one stream each."""

    namespace: str
    name: str
    kind: str = "broker"

    @property
    def is_channel(self) -> bool:
        return self.kind == "channel"

    @property
    def stream(self) -> str:
        # Namespaces and these names have no `_` nor `.`: the name is unique.
        return f"{'KNC' if self.is_channel else 'KNB'}_{self.namespace}_{self.name}"

    @property
    def subject(self) -> str:
        return f"{'knc' if self.is_channel else 'knb'}.{self.namespace}.{self.name}"

    @property
    def url(self) -> str:
        if self.is_channel:
            return channel_url(self.namespace, self.name)
        return broker_url(self.namespace, self.name)


@dataclass(frozen=True)
class TriggerEntry:
    namespace: str
    name: str
    broker: str
    subscriber: str  # a URL, reached through the broker's sidecar
    delivery: Delivery
    attributes: Mapping[str, str] | None = None
    filters: Sequence[Mapping[str, Any]] = ()
    # A channel's subscription: its `broker` is the channel; a reply goes to `reply`
    # (a URL, "" to drop it) rather than back into the channel.
    subscription: bool = False
    reply: str = ""

    @property
    def durable(self) -> str:
        # Trigger names may hold `.`, which JetStream names may not; `_` is in no
        # Kubernetes name, so the mapping is one to one.
        return f"{'S' if self.subscription else 'T'}_{self.name.replace('.', '_')}"

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "broker": self.broker,
            "subscriber": self.subscriber,
            "delivery": self.delivery.to_json(),
            "attributes": dict(self.attributes) if self.attributes is not None else None,
            "filters": [dict(f) for f in self.filters],
            "subscription": self.subscription,
            "reply": self.reply,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TriggerEntry:
        return cls(
            namespace=str(data["namespace"]),
            name=str(data["name"]),
            broker=str(data["broker"]),
            subscriber=str(data["subscriber"]),
            delivery=Delivery.from_json(data["delivery"]),
            attributes=data.get("attributes"),
            filters=tuple(data.get("filters") or ()),
            subscription=bool(data.get("subscription", False)),
            reply=str(data.get("reply", "")),
        )


@dataclass(frozen=True)
class BrokerConfig:
    """What the broker process serves."""

    brokers: tuple[BrokerEntry, ...] = ()
    triggers: tuple[TriggerEntry, ...] = ()
    pings: tuple[PingEntry, ...] = ()
    replicas: int = 1  # of each stream: 1 on the embedded server, up to 5 in a cluster

    def to_json(self) -> dict[str, Any]:
        return {
            "replicas": self.replicas,
            "brokers": [
                {"namespace": b.namespace, "name": b.name, "kind": b.kind} for b in self.brokers
            ],
            "triggers": [t.to_json() for t in self.triggers],
            "pings": [p.to_json() for p in self.pings],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BrokerConfig:
        return cls(
            brokers=tuple(
                BrokerEntry(str(b["namespace"]), str(b["name"]), str(b.get("kind", "broker")))
                for b in data["brokers"]
            ),
            triggers=tuple(TriggerEntry.from_json(t) for t in data["triggers"]),
            pings=tuple(PingEntry.from_json(p) for p in data.get("pings", ())),
            replicas=int(data.get("replicas", 1)),
        )

    def encode(self) -> str:
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return base64.b64encode(text.encode()).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> BrokerConfig:
        return cls.from_json(json.loads(base64.b64decode(text)))

    def broker(self, namespace: str, name: str, kind: str = "broker") -> BrokerEntry | None:
        return next(
            (b for b in self.brokers if (b.namespace, b.name, b.kind) == (namespace, name, kind)),
            None,
        )


@dataclass(frozen=True)
class Problem:
    """A Trigger that cannot deliver: the resource, its field and why."""

    ref: str
    field: str
    message: str
    reason: str

    def __str__(self) -> str:
        return f"{self.ref}: {self.field}: {self.message}"


@dataclass
class EventingPlan:
    config: BrokerConfig
    derived: list[dict[str, Any]] = field(default_factory=list)
    status: dict[Key, dict[str, Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def broker_url(namespace: str, name: str) -> str:
    return f"http://{INGRESS_HOST}/{namespace}/{name}"


def channel_url(namespace: str, name: str) -> str:
    """A channel's address: a path of the broker's ingress (Knative gives an
    InMemoryChannel a host of its own, `NAME-kn-channel.NS.svc.cluster.local`)."""
    return f"http://{INGRESS_HOST}/channels/{namespace}/{name}"


def expand(resources: Iterable[Resource], runner: Runner | None) -> EventingPlan:
    """See the module's docstring. Without a `runner` nothing runs; without a JetStream
    server (`runner.nats_url` empty) no broker runs, and every Broker says why."""
    resources = list(resources)
    cluster = nats_cluster(resources)
    replicas = 1
    plan = EventingPlan(config=BrokerConfig())
    if isinstance(cluster, Problem):
        plan.problems.append(cluster)
        runner = replace(runner, nats_url="") if runner is not None else None
    elif cluster is not None:
        replicas = cluster.replicas
        if runner is not None:
            runner = replace(runner, nats_url=cluster.servers, credentials=cluster.credentials)
    server = runner is not None and bool(runner.nats_url)
    brokers = {(b.namespace, b.name): b for b in resources if isinstance(b, ke.Broker)}
    triggers: list[TriggerEntry] = []
    for t in (r for r in resources if isinstance(r, ke.Trigger)):
        entry, problem = _trigger(t, brokers, resources)
        if problem is not None:
            plan.problems.append(problem)
            plan.status[t.key] = _status(False, problem.reason, problem.message)
            continue
        assert entry is not None
        triggers.append(entry)
        plan.status[t.key] = {
            **_status(server, "NoServer", _NO_SERVER),
            "subscriberUri": entry.subscriber,
        }
    for (ns, name), b in brokers.items():
        status = _status(server, "NoServer", _NO_SERVER)
        if server:
            status["address"] = {"url": broker_url(ns, name)}
        plan.status[b.key] = status
    pings = _pings(resources, plan, runner is not None)
    for src in resources:
        if isinstance(src, ke.ContainerSource):
            plan.derived += _container_source(src, resources, plan)
    for r in resources:
        if isinstance(r, ke.SinkBinding):
            sink = destination_url(r.spec.sink, r.namespace, resources)
            if sink.startswith("!"):
                problem = Problem(r.ref, "spec.sink", sink[1:], "SinkNotFound")
                plan.problems.append(problem)
                plan.status[r.key] = _status(False, problem.reason, problem.message)
            else:
                plan.status[r.key] = {**_status(True), "sinkUri": sink}
    channels, subscriptions = _channels(resources, plan, server)
    if server:
        plan.config = BrokerConfig(
            tuple(BrokerEntry(ns, name) for ns, name in sorted(brokers)) + channels,
            tuple(sorted(triggers, key=lambda e: e.durable)) + subscriptions,
            pings,
            replicas,
        )
    else:
        plan.config = BrokerConfig(pings=pings)
    if runner is not None and (plan.config.brokers or plan.config.pings):
        plan.derived = _broker_resources(plan.config, runner) + plan.derived
    return plan


SINK_ENV = "K_SINK"
OVERRIDES_ENV = "K_CE_OVERRIDES"
CONTAINER_SOURCE_LABEL = "sources.knative.dev/containerSource"


def _container_source(
    src: ke.ContainerSource, resources: Sequence[Resource], plan: EventingPlan
) -> list[dict[str, Any]]:
    """A ContainerSource runs as the Workload `containersource-NAME`: its container's
    command with `K_SINK` (and `K_CE_OVERRIDES`), through a sidecar of its own."""
    sink = destination_url(src.spec.sink, src.namespace, resources)
    if sink.startswith("!"):
        problem = Problem(src.ref, "spec.sink", sink[1:], "SinkNotFound")
        plan.problems.append(problem)
        plan.status[src.key] = _status(False, problem.reason, problem.message)
        return []
    template = src.spec.template
    container = template.spec.containers[0]
    env = [{"name": e.name, "value": e.value} for e in container.env]
    env.append({"name": SINK_ENV, "value": sink})
    if src.spec.ceOverrides is not None:
        overrides = {"extensions": dict(src.spec.ceOverrides.extensions)}
        env.append({"name": OVERRIDES_ENV, "value": json.dumps(overrides, sort_keys=True)})
    spec: dict[str, Any] = {
        "command": list(container.command),
        "args": list(container.args),
        "env": env,
        "serviceAccount": template.spec.serviceAccountName or "default",
    }
    if container.workingDir:
        spec["workingDir"] = container.workingDir
    labels = {**template.metadata.labels, CONTAINER_SOURCE_LABEL: src.name}
    labels.setdefault("app", f"containersource-{src.name}")
    plan.status[src.key] = {**_status(True), "sinkUri": sink}
    return [
        {
            "apiVersion": "ami.dev/v1alpha1",
            "kind": "Workload",
            "metadata": {
                "name": f"containersource-{src.name}",
                "namespace": src.namespace,
                "labels": labels,
                "annotations": {"sources.knative.dev/image": container.image},
            },
            "spec": spec,
        }
    ]


NO_RETRIES = Delivery(retry=0)  # a channel's subscription without a delivery, as in Knative


def _channels(
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
        plan.status[c.key] = _addressed(server, channel_url(ns, name))
    for r in resources:
        if isinstance(r, km.Subscription):
            entry, problem = _subscription(r, written, resources)
            if problem is not None:
                plan.problems.append(problem)
                plan.status[r.key] = _status(False, problem.reason, problem.message)
                continue
            assert entry is not None
            subs.append(entry)
            plan.status[r.key] = {
                **_status(server, "NoServer", _NO_SERVER),
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
                plan.status[r.key] = _status(False, problem.reason, problem.message)
                continue
            name = f"apiserversource-{r.name}"
            channels.append(BrokerEntry(r.namespace, name, "channel"))
            subs.append(TriggerEntry(r.namespace, name, name, sink, Delivery(), subscription=True))
            plan.status[r.key] = {**_status(server, "NoServer", _NO_SERVER), "sinkUri": sink}
        elif isinstance(r, km.Sequence | km.Parallel):
            made = (
                _sequence(r, resources) if isinstance(r, km.Sequence) else _parallel(r, resources)
            )
            if isinstance(made, Problem):
                plan.problems.append(made)
                plan.status[r.key] = _status(False, made.reason, made.message)
                continue
            chans, parts = made
            channels += chans
            subs += parts
            plan.status[r.key] = _addressed(server, chans[0].url)
    return tuple(channels), tuple(subs)


def _addressed(server: bool, url: str) -> dict[str, Any]:
    status = _status(server, "NoServer", _NO_SERVER)
    if server:
        status["address"] = {"url": url}
    return status


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


_NO_SERVER = "the mesh has no JetStream server: `ami up` starts one when its config has a Broker"


def _pings(resources: Sequence[Resource], plan: EventingPlan, runs: bool) -> tuple[PingEntry, ...]:
    out: list[PingEntry] = []
    for src in resources:
        if not isinstance(src, ke.PingSource):
            continue
        sink = destination_url(src.spec.sink, src.namespace, resources)
        if sink.startswith("!"):
            problem = Problem(src.ref, "spec.sink", sink[1:], "SinkNotFound")
            plan.problems.append(problem)
            plan.status[src.key] = _status(False, problem.reason, problem.message)
            continue
        spec = src.spec
        out.append(
            PingEntry(
                src.namespace,
                src.name,
                spec.schedule,
                spec.timezone or "",
                sink,
                content_type=spec.contentType or "",
                data=spec.data or "",
                data_base64=spec.dataBase64 or "",
                extensions=dict(spec.ceOverrides.extensions) if spec.ceOverrides else {},
            )
        )
        plan.status[src.key] = {**_status(runs, "NotRunning", ""), "sinkUri": sink}
    return tuple(sorted(out, key=lambda p: (p.namespace, p.name)))


@dataclass(frozen=True)
class NatsCluster:
    servers: str  # comma-separated
    credentials: str  # a file's path, "" for none
    replicas: int


def nats_cluster(resources: Iterable[Resource]) -> NatsCluster | Problem | None:
    """The NATS cluster `knative-eventing/config-nats` names, a Problem saying what is
    wrong with it, or None when there is none (the embedded server)."""
    cm = next(
        (
            r
            for r in resources
            if isinstance(r, ConfigMap) and (r.namespace, r.name) == (NAMESPACE, NATS_CONFIG)
        ),
        None,
    )
    if cm is None:
        return None
    ref = cm.ref
    servers = [s.strip() for s in cm.data.get("servers", "").split(",") if s.strip()]
    if not servers:
        return Problem(ref, "data.servers", "is required: nats://HOST:PORT, ...", "BadNatsConfig")
    for s in servers:
        parts = urlsplit(s)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("nats", "tls") or not parts.hostname or port is None:
            return Problem(
                ref, "data.servers", f"{s!r} is not a nats://HOST:PORT URL", "BadNatsConfig"
            )
    text = cm.data.get("replicas", "1").strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_REPLICAS:
        return Problem(
            ref,
            "data.replicas",
            f"must be a whole number from 1 to {MAX_REPLICAS}, got {text!r}",
            "BadNatsConfig",
        )
    return NatsCluster(",".join(servers), cm.data.get("credentials", "").strip(), int(text))


def reference_problems(resources: Iterable[Resource]) -> list[Problem]:
    """Triggers whose broker or subscriber the resources do not define."""
    return expand(resources, None).problems


def _status(ready: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    condition: dict[str, str] = {"type": "Ready", "status": "True" if ready else "False"}
    if not ready:
        condition["reason"] = reason or "NotReady"
        if message:
            condition["message"] = message
    return {"conditions": [condition]}


def _trigger(
    t: ke.Trigger,
    brokers: Mapping[tuple[str, str], ke.Broker],
    resources: Sequence[Resource],
) -> tuple[TriggerEntry | None, Problem | None]:
    broker = brokers.get((t.namespace, t.spec.broker))
    if broker is None:
        known = sorted(name for ns, name in brokers if ns == t.namespace)
        have = f"the namespace has {', '.join(known)}" if known else "the namespace has none"
        return None, Problem(
            t.ref,
            "spec.broker",
            f'no Broker "{t.spec.broker}" in namespace "{t.namespace}" ({have})',
            "BrokerDoesNotExist",
        )
    subscriber = destination_url(t.spec.subscriber, t.namespace, resources)
    if isinstance(subscriber, str) and subscriber.startswith("!"):
        return None, Problem(t.ref, "spec.subscriber", subscriber[1:], "SubscriberResolveFailed")
    delivery_spec = t.spec.delivery or broker.spec.delivery
    dead_letter = ""
    if delivery_spec is not None and delivery_spec.deadLetterSink is not None:
        dls = destination_url(delivery_spec.deadLetterSink, t.namespace, resources)
        where = "spec.delivery" if t.spec.delivery else f"{broker.ref}: spec.delivery"
        if dls.startswith("!"):
            return None, Problem(
                t.ref, f"{where}.deadLetterSink", dls[1:], "DeadLetterSinkResolveFailed"
            )
        dead_letter = dls
    delivery_json = (
        delivery_spec.model_dump(mode="json", exclude_none=True, by_alias=True)
        if delivery_spec is not None
        else None
    )
    delivery = resolve(delivery_json, dead_letter)
    attributes = dict(t.spec.filter.attributes) if t.spec.filter is not None else None
    filters = tuple(
        f.model_dump(mode="json", exclude_defaults=True, by_alias=True) for f in t.spec.filters
    )
    entry = TriggerEntry(
        t.namespace, t.name, t.spec.broker, subscriber, delivery, attributes, filters
    )
    return entry, None


def destination_url(dest: ke.Destination, namespace: str, resources: Sequence[Resource]) -> str:
    """The URL of a Destination, or "!" and why it has none."""
    ref = dest.ref
    if ref is None:
        return dest.uri or "!no ref or uri"
    ns = ref.namespace or namespace
    group = ref.apiVersion.rpartition("/")[0]
    path = dest.uri or ""
    if path and not path.startswith("/"):
        path = "/" + path
    if (group, ref.kind) == ("eventing.knative.dev", "Broker"):
        if not _defined(resources, ke.Broker, ns, ref.name):
            return f'!no Broker "{ref.name}" in namespace "{ns}"'
        return broker_url(ns, ref.name) + path
    if group == km.MESSAGING_GROUP and ref.kind in {m.KIND for m in km.CHANNELS}:
        model = next(m for m in km.CHANNELS if m.KIND == ref.kind)
        if not _defined(resources, model, ns, ref.name):
            return f'!no {ref.kind} "{ref.name}" in namespace "{ns}"'
        return channel_url(ns, ref.name) + path
    if (group, ref.kind) == ("flows.knative.dev", "Sequence"):
        if not _defined(resources, km.Sequence, ns, ref.name):
            return f'!no Sequence "{ref.name}" in namespace "{ns}"'
        return channel_url(ns, f"{ref.name}-kn-sequence-0") + path
    if (group, ref.kind) == ("flows.knative.dev", "Parallel"):
        if not _defined(resources, km.Parallel, ns, ref.name):
            return f'!no Parallel "{ref.name}" in namespace "{ns}"'
        return channel_url(ns, f"{ref.name}-kn-parallel") + path
    if (group, ref.kind) == ("serving.knative.dev", "Service"):
        if not _defined(resources, ks.Service, ns, ref.name):
            return f'!no Knative Service "{ref.name}" in namespace "{ns}"'
        return f"http://{ref.name}.{ns}.{CLUSTER_DOMAIN}{path}"
    if (group, ref.kind) == ("", "Service"):
        svc = next(
            (
                r
                for r in resources
                if isinstance(r, KubeService) and (r.namespace, r.name) == (ns, ref.name)
            ),
            None,
        )
        if svc is None:
            return f'!no Service "{ref.name}" in namespace "{ns}"'
        port = svc.spec.ports[0].port
        where = "" if port == 80 else f":{port}"
        return f"http://{ref.name}.{ns}.{CLUSTER_DOMAIN}{where}{path}"
    return f"!Ami cannot address {ref.kind} ({ref.apiVersion}) yet"


def _defined(resources: Sequence[Resource], kind: type[Resource], ns: str, name: str) -> bool:
    return any(isinstance(r, kind) and (r.namespace, r.name) == (ns, name) for r in resources)


def _broker_resources(config: BrokerConfig, runner: Runner) -> list[dict[str, Any]]:
    labels = {"app": INGRESS, EVENTING_LABEL: "ingress"}
    workload = {
        "apiVersion": "ami.dev/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": INGRESS, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "command": [runner.python, "-m", BROKER_MODULE],
            "env": [
                {"name": CONFIG_ENV, "value": config.encode()},
                {"name": NATS_URL_ENV, "value": runner.nats_url},
                {"name": NATS_CREDENTIALS_ENV, "value": runner.credentials},
            ],
            "serviceAccount": SERVICE_ACCOUNT,
            "ports": [{"name": "http", "port": INGRESS_PORT, "protocol": "HTTP"}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": INGRESS_PORT}},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": INGRESS, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"app": INGRESS},
            "ports": [{"name": "http", "port": 80, "targetPort": INGRESS_PORT}],
        },
    }
    return [workload, service]
