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

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from amimesh.eventing import brokerconfig, flows
from amimesh.eventing.addressing import (
    NO_SERVER,
    EventingPlan,
    Problem,
    destination_url,
    direct_cluster,
    ready_status,
)
from amimesh.eventing.config import (
    BROKER_MODULE,
    CONFIG_ENV,
    INGRESS,
    INGRESS_PORT,
    NAMESPACE,
    NATS_CREDENTIALS_ENV,
    NATS_URL_ENV,
    SERVICE_ACCOUNT,
    BrokerConfig,
    BrokerEntry,
    PingEntry,
    Runner,
    TriggerEntry,
    broker_url,
)
from amimesh.eventing.delivery import Delivery, resolve
from amimesh.resources import knative_eventing as ke
from amimesh.resources import yaml_text
from amimesh.resources.kube import ConfigMap
from amimesh.resources.meta import Resource

# The mesh's NATS cluster, when it has one (else `ami up` runs one server):
# `servers` (comma-separated nats:// URLs), `credentials` (a file holding
# `user:password`, relative to the mesh's directory), `replicas` (of each stream).
NATS_CONFIG = "config-nats"
MAX_REPLICAS = 5
EVENTING_LABEL = "eventing.knative.dev/broker"
SINK_ENV = "K_SINK"
OVERRIDES_ENV = "K_CE_OVERRIDES"
CONTAINER_SOURCE_LABEL = "sources.knative.dev/containerSource"


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
    entries: dict[tuple[str, str], BrokerEntry] = {}
    broken: dict[tuple[str, str], Problem] = {}
    for key, b in brokers.items():
        entry_or_problem = _broker_entry(b, resources, runner, replicas, plan)
        if isinstance(entry_or_problem, Problem):
            plan.problems.append(entry_or_problem)
            broken[key] = entry_or_problem
        else:
            entries[key] = entry_or_problem
    triggers: list[TriggerEntry] = []
    for t in (r for r in resources if isinstance(r, ke.Trigger)):
        entry, problem = _trigger(t, brokers, resources)
        if problem is None and (t.namespace, t.spec.broker) not in entries:
            message = f'its Broker "{t.spec.broker}" is not ready: its config is wrong'
            problem = Problem(t.ref, "spec.broker", message, "BrokerNotReady")
        if problem is not None:
            plan.problems.append(problem)
            plan.status[t.key] = ready_status(False, problem.reason, problem.message)
            continue
        assert entry is not None
        triggers.append(entry)
        plan.status[t.key] = {
            **ready_status(server, "NoServer", NO_SERVER),
            "subscriberUri": entry.subscriber,
        }
    for (ns, name), b in brokers.items():
        if (ns, name) in broken:
            bad = broken[(ns, name)]
            plan.status[b.key] = ready_status(False, bad.reason, str(bad))
            continue
        status = ready_status(server, "NoServer", NO_SERVER)
        if server:
            status["address"] = {"url": broker_url(ns, name)}
        defaults = brokerconfig.br_defaults(resources, ns)
        status["annotations"] = {
            ke.BROKER_CLASS: brokerconfig.broker_class(
                b, defaults if isinstance(defaults, brokerconfig.Defaults) else None
            )
        }
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
                plan.status[r.key] = ready_status(False, problem.reason, problem.message)
            else:
                plan.status[r.key] = {**ready_status(True), "sinkUri": sink}
    channels, subscriptions = flows.channels(resources, plan, server)
    if server:
        plan.config = BrokerConfig(
            tuple(entries[k] for k in sorted(entries)) + channels,
            tuple(sorted(triggers, key=lambda e: e.durable)) + subscriptions,
            pings,
            replicas,
        )
    else:
        plan.config = BrokerConfig(pings=pings)
    if runner is not None and (plan.config.brokers or plan.config.pings):
        processes = broker_processes(resources)
        if isinstance(processes, Problem):
            plan.problems.append(processes)
            processes = 1
        plan.derived = _broker_resources(plan.config, runner, processes) + plan.derived
    return plan


# Ami's own setting: how many broker processes run (`knative-eventing/config-ami-broker`,
# `processes`). They share every stream and consumer, so each takes a part of the
# ingress and of every trigger's deliveries; the first alone runs the PingSources.
BROKER_CONFIG = "config-ami-broker"
MAX_PROCESSES = 8


def broker_processes(resources: Iterable[Resource]) -> int | Problem:
    cm = next(
        (
            r
            for r in resources
            if isinstance(r, ConfigMap) and (r.namespace, r.name) == (NAMESPACE, BROKER_CONFIG)
        ),
        None,
    )
    text = cm.data.get("processes", "1").strip() if cm is not None else "1"
    if not text.isdigit() or not 1 <= int(text) <= MAX_PROCESSES:
        assert cm is not None
        message = f"must be a whole number from 1 to {MAX_PROCESSES}, got {text!r}"
        return Problem(cm.ref, "data.processes", message, "BadConfig")
    return int(text)


def _container_source(
    src: ke.ContainerSource, resources: Sequence[Resource], plan: EventingPlan
) -> list[dict[str, Any]]:
    """A ContainerSource runs as the Workload `containersource-NAME`: its container's
    command with `K_SINK` (and `K_CE_OVERRIDES`), through a sidecar of its own."""
    sink = destination_url(src.spec.sink, src.namespace, resources)
    if sink.startswith("!"):
        problem = Problem(src.ref, "spec.sink", sink[1:], "SinkNotFound")
        plan.problems.append(problem)
        plan.status[src.key] = ready_status(False, problem.reason, problem.message)
        return []
    template = src.spec.template
    container = template.spec.containers[0]
    env: list[dict[str, Any]] = [e.workload_entry() for e in container.env]
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
    plan.status[src.key] = {**ready_status(True), "sinkUri": sink}
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


def _pings(resources: Sequence[Resource], plan: EventingPlan, runs: bool) -> tuple[PingEntry, ...]:
    out: list[PingEntry] = []
    for src in resources:
        if not isinstance(src, ke.PingSource):
            continue
        sink = destination_url(src.spec.sink, src.namespace, resources)
        if sink.startswith("!"):
            problem = Problem(src.ref, "spec.sink", sink[1:], "SinkNotFound")
            plan.problems.append(problem)
            plan.status[src.key] = ready_status(False, problem.reason, problem.message)
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
        plan.status[src.key] = {**ready_status(runs, "NotRunning", ""), "sinkUri": sink}
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


BR_DEFAULTS = "config-br-defaults"
BR_DEFAULTS_KEY = "default-br-config"
# Knative ships `config-br-defaults` with this delivery: a mesh without the ConfigMap
# gets it too.
SHIPPED = ke.DeliverySpec(retry=10, backoffPolicy="exponential", backoffDelay="PT0.2S")


def default_delivery(
    resources: Sequence[Resource], namespace: str
) -> ke.DeliverySpec | Problem | None:
    """A Broker's delivery when it has none, from Knative's `config-br-defaults`
    (`default-br-config`: `namespaceDefaults.NS.delivery`, else
    `clusterDefault.delivery`); Knative's shipped one without the ConfigMap; None (no
    retries) when the ConfigMap names none."""
    cm = next(
        (
            r
            for r in resources
            if isinstance(r, ConfigMap) and (r.namespace, r.name) == (NAMESPACE, BR_DEFAULTS)
        ),
        None,
    )
    if cm is None:
        return SHIPPED
    field = f"data.{BR_DEFAULTS_KEY}"
    docs = yaml_text.documents(cm.data.get(BR_DEFAULTS_KEY, ""))
    data: Any = docs[0].data if docs and isinstance(docs[0], yaml_text.Document) else {}
    if not isinstance(data, dict):
        return Problem(
            cm.ref, field, "must be YAML: clusterDefault, namespaceDefaults", "BadConfig"
        )
    per_namespace = data.get("namespaceDefaults") or {}
    chosen = (per_namespace.get(namespace) if isinstance(per_namespace, dict) else None) or (
        data.get("clusterDefault") or {}
    )
    delivery = chosen.get("delivery") if isinstance(chosen, dict) else None
    if delivery is None:
        return None
    try:
        return ke.DeliverySpec.model_validate(delivery)
    except ValueError as e:
        message = " ".join(str(e).split())[:300]
        return Problem(cm.ref, f"{field}: delivery", message, "BadConfig")


def _broker_entry(
    b: ke.Broker,
    resources: Sequence[Resource],
    runner: Runner | None,
    replicas: int,
    plan: EventingPlan,
) -> BrokerEntry | Problem:
    """The Broker as its process serves it, its stream's settings from its config
    (`eventing.brokerconfig`); a Problem when its config is wrong."""
    defaults = brokerconfig.br_defaults(resources, b.namespace)
    if isinstance(defaults, Problem):
        return defaults
    settings = brokerconfig.stream_settings(b, resources, defaults)
    if isinstance(settings, Problem):
        return settings
    credentials = settings.credentials
    if settings.secret is not None:
        file = f"{settings.secret[0]}.{settings.secret[1]}"
        plan.secrets[file] = brokerconfig.secret_credential(resources, settings.secret)
        credentials = f"{runner.secrets_dir}/{file}" if runner and runner.secrets_dir else file
    return BrokerEntry(
        b.namespace,
        b.name,
        servers=settings.servers,
        credentials=credentials,
        replicas=settings.replicas or (1 if settings.servers else replicas),
        retention=settings.retention,
        max_age_s=settings.max_age_s,
        max_bytes=settings.max_bytes,
    )


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
    if delivery_spec is None:
        fallback = default_delivery(resources, t.namespace)
        if isinstance(fallback, Problem):
            return None, fallback
        delivery_spec = fallback
    dead_letter = ""
    if delivery_spec is not None and delivery_spec.deadLetterSink is not None:
        dls = destination_url(delivery_spec.deadLetterSink, t.namespace, resources)
        where = "spec.delivery" if t.spec.delivery else f"{broker.ref}: spec.delivery"
        if not (t.spec.delivery or broker.spec.delivery):
            where = f"{BR_DEFAULTS}: delivery"
        if dls.startswith("!"):
            return None, Problem(
                t.ref, f"{where}.deadLetterSink", dls[1:], "DeadLetterSinkResolveFailed"
            )
        dead_letter = dls
    delivery = (
        resolve(delivery_spec.model_dump(mode="json", exclude_none=True), dead_letter)
        if delivery_spec is not None
        else Delivery(retry=0)
    )
    attributes = dict(t.spec.filter.attributes) if t.spec.filter is not None else None
    filters = tuple(
        f.model_dump(mode="json", exclude_defaults=True, by_alias=True) for f in t.spec.filters
    )
    entry = TriggerEntry(
        t.namespace,
        t.name,
        t.spec.broker,
        subscriber,
        delivery,
        attributes,
        filters,
        direct=direct_cluster(t.spec.subscriber, t.namespace, resources),
    )
    return entry, None


def _broker_resources(
    config: BrokerConfig, runner: Runner, processes: int = 1
) -> list[dict[str, Any]]:
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
            "replicas": processes,
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
