"""Knative Serving on the mesh, as a pure function: Services, Configurations and Routes
in; Revisions, and the mesh resources that run and route them, out.

    out = expand(resources, history, ready=..., scale=..., now=...)
    out.history        # every Revision made so far (a new one per template change)
    out.derived        # Workloads, Services, VirtualServices, a Gateway: what runs them
    out.status         # Knative's status of each Service, Configuration, Route, Revision

As Knative's controllers do it:
- a Knative `Service` NAME owns a `Configuration` NAME and a `Route` NAME;
- every change of a Configuration's template makes a new immutable Revision, named
  `NAME-00001`, `NAME-00002`, ... or as the template's `metadata.name` says;
- a Route sends each traffic target's percent to a revision (`revisionName`), or to a
  configuration's latest *ready* revision (`latestRevision`), so a new revision takes
  traffic only once it answers; a tagged target is also reachable alone at
  `TAG-NAME.NS.svc.cluster.local` and `TAG-NAME.NS.DOMAIN`.

Each revision runs as a Workload of the same name (labels `serving.knative.dev/service`,
`.../configuration`, `.../revision`, so every policy selects it like any workload),
behind a Service of its name; a Route is a Service (the host `NAME.NS.svc.cluster.local`
in the mesh) and a VirtualService that splits its traffic between the revisions'
Services, bound to the mesh and, unless `networking.knative.dev/visibility:
cluster-local`, to the Knative ingress gateway at `NAME.NS.DOMAIN`.

A revision's `containerConcurrency` is its Workload's `ami.dev/max-concurrency`: the
instance's sidecar keeps at most that many requests in flight to the app and queues
10 times as many, as Knative's queue-proxy does. Its `timeoutSeconds` (or a shorter
`responseStartTimeoutSeconds`) is the route's per-try timeout: a request whose
response has not started by then gets a 504. `timeoutSeconds` is also the Workload's
`ami.dev/request-timeout` and `idleTimeoutSeconds` its `ami.dev/idle-timeout`: the
instance's sidecar ends a request that runs longer, or receives no byte for longer,
as the queue-proxy does (a started response is cut off).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from amimesh.resources import istio_gateway as gw
from amimesh.resources import knative_network as kn_net
from amimesh.resources import knative_serving as ks
from amimesh.resources import yaml_text
from amimesh.resources.knative_pod import Container, Probe, RevisionSpec
from amimesh.resources.kube import ConfigMap
from amimesh.resources.meta import Resource
from amimesh.resources.workload import IDLE_TIMEOUT, MAX_CONCURRENCY, REQUEST_TIMEOUT

SERVING = "serving.knative.dev"
SERVICE_LABEL = f"{SERVING}/service"
CONFIGURATION_LABEL = f"{SERVING}/configuration"
REVISION_LABEL = f"{SERVING}/revision"
ROUTE_LABEL = f"{SERVING}/route"
GENERATION_LABEL = f"{SERVING}/configurationGeneration"
VISIBILITY_LABEL = "networking.knative.dev/visibility"
CLUSTER_LOCAL = "cluster-local"
KNATIVE_NAMESPACE = ks.KNATIVE_NAMESPACE
INGRESS_GATEWAY = "knative-ingress-gateway"
INGRESS_GATEWAY_REF = f"{KNATIVE_NAMESPACE}/{INGRESS_GATEWAY}"
IMAGE_MAP = "ami-images"
ACTIVATOR = "activator-service"
ACTIVATOR_HOST = f"{ACTIVATOR}.{KNATIVE_NAMESPACE}.svc.cluster.local"
# What the activator reads to know whose request it holds (as Knative's activator).
REVISION_HEADER = "Knative-Serving-Revision"
NAMESPACE_HEADER = "Knative-Serving-Namespace"
CLUSTER_DOMAIN = "svc.cluster.local"
DEFAULT_PORT = 8080
ROUTE_PORT = 80
FORWARDED = "for=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%;proto=%REQ(:SCHEME)%"
ACTIVATOR_H2_PORT = 81  # the activator's port for h2c revisions (HTTP/2 to it)
DEFAULT_TIMEOUT_S = 300
# The mesh's default retries (2), written out because a VirtualService carries its
# per-try timeout in `retries`.
ROUTE_RETRIES = 2
# Knative's scale bounds and initial scale, before the autoscaler has a say.
MIN_SCALE = "autoscaling.knative.dev/min-scale"
MIN_SCALE_OLD = "autoscaling.knative.dev/minScale"
INITIAL_SCALE = "autoscaling.knative.dev/initial-scale"
INITIAL_SCALE_OLD = "autoscaling.knative.dev/initialScale"
AUTOSCALER_CONFIG = "config-autoscaler"
DEFAULTS_CONFIG = "config-defaults"


@dataclass(frozen=True)
class RevisionRecord:
    """A revision made from a configuration's template, kept for good (immutable)."""

    namespace: str
    name: str
    configuration: str
    service: str  # the owning Knative Service, "" for a bare Configuration
    generation: int
    digest: str  # of the template it was made from
    created: float
    template: Mapping[str, Any]  # {"metadata": {...}, "spec": {...}} as written

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "configuration": self.configuration,
            "service": self.service,
            "generation": self.generation,
            "digest": self.digest,
            "created": self.created,
            "template": dict(self.template),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RevisionRecord:
        return cls(
            namespace=str(data["namespace"]),
            name=str(data["name"]),
            configuration=str(data["configuration"]),
            service=str(data.get("service", "")),
            generation=int(data["generation"]),
            digest=str(data["digest"]),
            created=float(data["created"]),
            template=dict(data["template"]),
        )

    @property
    def spec(self) -> RevisionSpec:
        return RevisionSpec.model_validate(self.template["spec"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.template.get("metadata", {}).get("labels", {}))

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.template.get("metadata", {}).get("annotations", {}))


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True", "False", "Unknown"
    reason: str = ""
    message: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"type": self.type, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        return out


@dataclass(frozen=True)
class Target:
    """One resolved traffic target."""

    revision: str
    percent: int
    tag: str = ""
    configuration: str = ""  # set when it follows the latest ready revision
    latest: bool = False


@dataclass
class Expanded:
    history: list[RevisionRecord]
    derived: list[dict[str, Any]] = field(default_factory=list)
    # (qualified kind, namespace, name) → Knative's `status` of that object
    status: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # the revisions that take traffic (or are a configuration's latest): (ns, name)
    active: set[tuple[str, str]] = field(default_factory=set)


@dataclass(frozen=True)
class _Config:
    namespace: str
    name: str
    service: str
    template: ks.RevisionTemplate
    labels: Mapping[str, str]


@dataclass(frozen=True)
class _Route:
    namespace: str
    name: str
    service: str
    traffic: Sequence[ks.TrafficTarget]
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)


def template_digest(template: Mapping[str, Any]) -> str:
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def domain_of(configmaps: Iterable[ConfigMap], labels: Mapping[str, str]) -> str:
    """The domain of a route with `labels`, by Knative's `config-domain` rules: the
    entry whose selector (`selector:` YAML of labels) matches, the most specific
    first; else the entry without a selector; else `svc.cluster.local`."""
    for cm in configmaps:
        if cm.namespace != KNATIVE_NAMESPACE or cm.name != "config-domain":
            continue
        best: tuple[int, str] | None = None
        for domain, selector_text in sorted(cm.data.items()):
            if domain.startswith("_"):  # _example: Knative's documentation block
                continue
            selector = _selector(selector_text)
            if selector is None or not all(labels.get(k) == v for k, v in selector.items()):
                continue
            if best is None or len(selector) > best[0]:
                best = (len(selector), domain)
        if best is not None:
            return best[1]
    return CLUSTER_DOMAIN


def _selector(text: str) -> dict[str, str] | None:
    """`selector:\n  app: x` → {"app": "x"}; "" → {} (matches all); None when the
    value is not that shape. Read by Ami's one YAML loader (bounded)."""
    if not text.strip():
        return {}
    docs = yaml_text.documents(text)
    if len(docs) != 1 or not isinstance(docs[0], yaml_text.Document):
        return None
    data = docs[0].data
    if not isinstance(data, dict):
        return None
    selector = data.get("selector", {})
    if not isinstance(selector, dict):
        return None
    return {str(k): str(v) for k, v in selector.items()}


def expand(
    resources: Iterable[Resource],
    history: Sequence[RevisionRecord],
    *,
    ready: Iterable[tuple[str, str]] = (),
    ready_once: Iterable[tuple[str, str]] = (),
    scale: Mapping[tuple[str, str], int] | None = None,
    activator_port: int | None = None,
    through_activator: Iterable[tuple[str, str]] = (),
    now: float,
) -> Expanded:
    """See the module's docstring. `ready`: the revisions (namespace, name) with a
    ready instance; `scale`: instances wanted per revision (the autoscaler's say),
    else each revision's initial scale. `ready_once`: the revisions that have been
    ready (a revision scaled to zero stays Ready, as in Knative). With an activator
    (its loopback port), the share of each revision of `through_activator`, and of
    each with no ready instance, goes to it, with the revision named in
    `Knative-Serving-Revision` and `-Namespace`."""
    via = set(through_activator) if activator_port else set()
    resources = list(resources)
    now_ready = set(ready)
    ready_set = now_ready | set(ready_once)
    configs, routes = _owners(resources)
    configmaps = [r for r in resources if isinstance(r, ConfigMap)]
    autoscaler = _config_map(configmaps, AUTOSCALER_CONFIG)
    defaults = _config_map(configmaps, DEFAULTS_CONFIG)
    out = Expanded(history=list(history))
    errors: dict[tuple[str, str], str] = {}
    for c in configs:
        problem = _revise(out.history, c, now, defaults)
        if problem:
            errors[(c.namespace, c.name)] = problem
    # A revision allowed to start at zero is Ready with no instance, as in Knative.
    ready_set |= {(r.namespace, r.name) for r in out.history if _initial_scale(r, autoscaler) == 0}
    by_name = {(r.namespace, r.name): r for r in out.history}
    latest_created: dict[tuple[str, str], RevisionRecord] = {}
    latest_ready: dict[tuple[str, str], RevisionRecord] = {}
    for r in out.history:  # in order of creation
        key = (r.namespace, r.configuration)
        latest_created[key] = r
        if (r.namespace, r.name) in ready_set:
            latest_ready[key] = r
    gateway_hosts: list[str] = []
    network = network_of(configmaps)
    for route in routes:
        targets, problem = _resolve(route, by_name, latest_ready, latest_created)
        external = route.labels.get(VISIBILITY_LABEL) != CLUSTER_LOCAL
        domain = domain_of(configmaps, route.labels) if external else CLUSTER_DOMAIN
        if external and domain != CLUSTER_DOMAIN:
            gateway_hosts += _route_hosts(route, targets, domain, network)
        # A revision with no ready instance: its requests wait at the activator.
        waiting = {(route.namespace, t.revision) for t in targets} - now_ready
        route_via = via | waiting if activator_port else via
        out.derived += _route_resources(
            route, targets, by_name, domain, external, route_via, network
        )
        out.active |= {(route.namespace, t.revision) for t in targets}
        out.status[("Route", route.namespace, route.name)] = _route_status(
            route, targets, problem, domain, ready_set, network
        )
    # A configuration's latest revision runs (its initial scale) even with no route;
    # one whose configuration is gone does not.
    out.active |= {
        (c.namespace, latest_created[(c.namespace, c.name)].name)
        for c in configs
        if (c.namespace, c.name) in latest_created
    }
    images = image_map(configmaps)
    for r in out.history:
        wanted = (scale or {}).get((r.namespace, r.name))
        if wanted is None:
            active = (r.namespace, r.name) in out.active
            wanted = _initial_scale(r, autoscaler) if active else 0
        run = runnable(serving_container(r.spec), images)
        if isinstance(run, str):
            out.status[("Revision", r.namespace, r.name)] = _revision_status(r, ready_set, run)
            errors.setdefault((r.namespace, r.configuration), run)
            continue
        out.derived += _revision_resources(r, run, wanted)
        out.status[("Revision", r.namespace, r.name)] = _revision_status(r, ready_set)
    if gateway_hosts:
        out.derived.append(_ingress_gateway(_ingress_port(resources)))
    if activator_port and routes:
        out.derived.append(_activator_entry(activator_port))
    for c in configs:
        key = (c.namespace, c.name)
        out.status[("Configuration", c.namespace, c.name)] = _configuration_status(
            latest_created.get(key), latest_ready.get(key), errors.get(key)
        )
    for svc in resources:
        if isinstance(svc, ks.Service):
            out.status[(svc.qualified_kind(), svc.namespace, svc.name)] = _service_status(out, svc)
    return out


# --- ownership ---------------------------------------------------------------------------


def _owners(resources: Sequence[Resource]) -> tuple[list[_Config], list[_Route]]:
    """The configurations and routes in force: each Knative Service's own, and the
    standalone ones."""
    configs: list[_Config] = []
    routes: list[_Route] = []
    for r in resources:
        if isinstance(r, ks.Service):
            labels = {**r.metadata.labels, SERVICE_LABEL: r.name}
            configs.append(_Config(r.namespace, r.name, r.name, r.spec.template, labels))
            traffic = r.spec.traffic or [ks.TrafficTarget(latestRevision=True, percent=100)]
            routes.append(
                _Route(r.namespace, r.name, r.name, traffic, labels, r.metadata.annotations)
            )
        elif isinstance(r, ks.Configuration):
            configs.append(_Config(r.namespace, r.name, "", r.spec.template, r.metadata.labels))
        elif isinstance(r, ks.Route):
            routes.append(
                _Route(
                    r.namespace,
                    r.name,
                    "",
                    r.spec.traffic,
                    r.metadata.labels,
                    r.metadata.annotations,
                )
            )
    return configs, routes


# --- revisions ---------------------------------------------------------------------------


def _template_json(template: ks.RevisionTemplate) -> dict[str, Any]:
    data = template.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    meta = data.setdefault("metadata", {})
    meta.pop("creationTimestamp", None)
    data.setdefault("spec", template.spec.model_dump(mode="json", exclude_none=True))
    return data


def _revise(
    history: list[RevisionRecord], c: _Config, now: float, defaults: Mapping[str, str]
) -> str:
    """Add a revision when `c`'s template changed; what is wrong if it cannot. The new
    revision's spec gets `config-defaults`' values for what the template leaves out
    (as Knative's webhook defaults it); a later change of the defaults makes no
    revision."""
    template = _template_json(c.template)
    digest = template_digest(template)
    mine = [r for r in history if r.namespace == c.namespace and r.configuration == c.name]
    latest = mine[-1] if mine else None
    wanted_name = c.template.metadata.name
    if latest is not None and latest.digest == digest:
        if wanted_name is None or wanted_name == latest.name:
            return ""
    generation = (latest.generation if latest else 0) + 1
    name = wanted_name or f"{c.name}-{generation:05d}"
    taken = next((r for r in history if r.namespace == c.namespace and r.name == name), None)
    if taken is not None:
        if taken.digest == digest and taken.configuration == c.name:
            return ""  # back to an earlier template under its own name: nothing new
        return (
            f"revision {name} already exists with another template: "
            "a new template needs a new spec.template.metadata.name"
        )
    history.append(
        RevisionRecord(
            namespace=c.namespace,
            name=name,
            configuration=c.name,
            service=c.service,
            generation=generation,
            digest=digest,
            created=now,
            template=_defaulted(template, defaults),
        )
    )
    return ""


def _defaulted(template: dict[str, Any], defaults: Mapping[str, str]) -> dict[str, Any]:
    """`timeoutSeconds` and `containerConcurrency` from `config-defaults`
    (`revision-timeout-seconds`, `container-concurrency`) when the template has none."""
    spec = dict(template["spec"])
    for field_name, key in (
        ("timeoutSeconds", "revision-timeout-seconds"),
        ("containerConcurrency", "container-concurrency"),
    ):
        text = defaults.get(key, "").strip()
        if field_name not in spec and text.isdigit():
            spec[field_name] = int(text)
    return {**template, "spec": spec}


def _config_map(configmaps: Iterable[ConfigMap], name: str) -> Mapping[str, str]:
    """The data of Knative's ConfigMap `name` (in knative-serving), empty if none."""
    for cm in configmaps:
        if cm.namespace == KNATIVE_NAMESPACE and cm.name == name:
            return cm.data
    return {}


def _initial_scale(r: RevisionRecord, autoscaler: Mapping[str, str]) -> int:
    """Instances a revision starts with, as Knative's `GetInitialScale`: its
    `initial-scale` (0 only when `config-autoscaler` says `allow-zero-initial-scale`),
    else the config's `initial-scale` (1), and never below its `min-scale`."""
    annotations = r.annotations

    def number(text: str | None) -> int | None:
        try:
            return int(text) if text is not None else None
        except ValueError:
            return None

    allow_zero = autoscaler.get("allow-zero-initial-scale", "").strip().lower() == "true"
    initial = number(annotations.get(INITIAL_SCALE, annotations.get(INITIAL_SCALE_OLD)))
    if initial is None or (initial == 0 and not allow_zero):
        initial = number(autoscaler.get("initial-scale")) or 1
    low = number(annotations.get(MIN_SCALE, annotations.get(MIN_SCALE_OLD))) or 0
    return max(initial, low)


def serving_container(spec: RevisionSpec) -> Container:
    for c in spec.containers:
        if c.ports:
            return c
    return spec.containers[0]


def container_port(spec: RevisionSpec) -> tuple[int, str]:
    """(port, protocol) the revision's app serves: the declared `containerPort`
    (8080 by default), HTTP2 for an `h2c` port."""
    c = serving_container(spec)
    if c.ports:
        p = c.ports[0]
        return p.containerPort, "HTTP2" if p.name == "h2c" else "HTTP"
    return DEFAULT_PORT, "HTTP"


def _probe(probe: Probe | None, port: int) -> dict[str, Any]:
    """Knative's readiness probe as a Workload's: a TCP check of the port when none
    is written; `periodSeconds` 0 (Knative's aggressive probing) is the fastest."""
    if probe is None:
        return {"tcpSocket": {"port": port}, "periodSeconds": 1}
    out: dict[str, Any] = {}
    if probe.httpGet is not None:
        out["httpGet"] = {"path": probe.httpGet.path or "/", "port": port}
    else:
        out["tcpSocket"] = {"port": port}
    if probe.periodSeconds:
        out["periodSeconds"] = probe.periodSeconds
    if probe.timeoutSeconds:
        out["timeoutSeconds"] = probe.timeoutSeconds
    if probe.failureThreshold:
        out["failureThreshold"] = probe.failureThreshold
    if probe.initialDelaySeconds:
        out["initialDelaySeconds"] = probe.initialDelaySeconds
    return out


def _liveness(probe: Probe | None, port: int) -> dict[str, Any] | None:
    """Kubernetes' liveness probe as a Workload's, with Kubernetes' defaults (every 10 s,
    a 1 s timeout, 3 failures in a row); aimed at the serving port, as Knative aims it."""
    if probe is None:
        return None
    action: dict[str, Any] = (
        {"httpGet": {"path": probe.httpGet.path or "/", "port": port}}
        if probe.httpGet is not None
        else {"tcpSocket": {"port": port}}
    )
    return {
        **action,
        "periodSeconds": probe.periodSeconds or 10,
        "timeoutSeconds": probe.timeoutSeconds or 1,
        "failureThreshold": probe.failureThreshold or 3,
        "initialDelaySeconds": probe.initialDelaySeconds,
    }


@dataclass(frozen=True)
class Run:
    """How a container runs here: its command, args, directory and env."""

    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    working_dir: str = ""
    env: tuple[tuple[str, str], ...] = ()


def image_map(configmaps: Iterable[ConfigMap]) -> dict[str, Run]:
    """The mesh's image map: ConfigMap `knative-serving/ami-images`, whose keys are
    image references (with or without a tag) and values what runs for them, as YAML
    (`command`, `args`, `workingDir`, `env` as a mapping), the way Skaffold maps an
    image to the source that builds it. Entries that are not that shape are skipped."""
    out: dict[str, Run] = {}
    for cm in configmaps:
        if cm.namespace != KNATIVE_NAMESPACE or cm.name != IMAGE_MAP:
            continue
        for image, text in cm.data.items():
            docs = yaml_text.documents(text)
            if len(docs) != 1 or not isinstance(docs[0], yaml_text.Document):
                continue
            data = docs[0].data
            command = data.get("command") if isinstance(data, dict) else None
            if not isinstance(command, list) or not command:
                continue
            assert isinstance(data, dict)
            env = data.get("env") or {}
            out[image] = Run(
                command=tuple(str(c) for c in command),
                args=tuple(str(a) for a in data.get("args") or ()),
                working_dir=str(data.get("workingDir") or ""),
                env=tuple((str(k), str(v)) for k, v in env.items())
                if isinstance(env, dict)
                else (),
            )
    return out


def _untagged(image: str) -> str:
    name = image.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def runnable(container: Container, images: Mapping[str, Run]) -> Run | str:
    """What runs for `container`: its own `command` (and `args`), else what the image
    map says its image means (the container's `args` and `workingDir`, when written,
    override the map's, as a container's override an image's); else why it cannot."""
    if container.command:
        return Run(tuple(container.command), tuple(container.args), container.workingDir or "")
    mapped = images.get(container.image) or images.get(_untagged(container.image))
    if mapped is None:
        return (
            f"the image {container.image!r} has no command to run here: give the container "
            f"`command` (and `args`), or map the image in the ConfigMap "
            f"{KNATIVE_NAMESPACE}/{IMAGE_MAP} (data: {{{container.image!r}: "
            "'command: [...]'}})"
        )
    return Run(
        mapped.command,
        tuple(container.args) or mapped.args,
        container.workingDir or mapped.working_dir,
        mapped.env,
    )


def _revision_resources(r: RevisionRecord, run: Run, replicas: int) -> list[dict[str, Any]]:
    spec = r.spec
    container = serving_container(spec)
    port, protocol = container_port(spec)
    labels = {
        **r.labels,
        CONFIGURATION_LABEL: r.configuration,
        REVISION_LABEL: r.name,
        GENERATION_LABEL: str(r.generation),
        "service.istio.io/canonical-name": r.service or r.configuration,
        "service.istio.io/canonical-revision": r.name,
    }
    if r.service:
        labels[SERVICE_LABEL] = r.service
    own = {e.name for e in container.env}
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in run.env if k not in own]
    env += [e.workload_entry() for e in container.env]
    env += [
        {"name": "K_SERVICE", "value": r.service or r.configuration},
        {"name": "K_CONFIGURATION", "value": r.configuration},
        {"name": "K_REVISION", "value": r.name},
    ]
    workload_spec: dict[str, Any] = {
        "command": list(run.command),
        "args": list(run.args),
        "env": env,
        "serviceAccount": spec.serviceAccountName or "default",
        "replicas": replicas,
        "ports": [{"name": "http", "port": port, "protocol": protocol}],
        "readinessProbe": _probe(container.readinessProbe, port),
    }
    liveness = _liveness(container.livenessProbe, port)
    if liveness is not None:
        workload_spec["livenessProbe"] = liveness
    if run.working_dir:
        workload_spec["workingDir"] = run.working_dir
    annotations = {f"{SERVING}/image": container.image} if container.image else {}
    if spec.containerConcurrency:
        annotations[MAX_CONCURRENCY] = str(spec.containerConcurrency)
    annotations[REQUEST_TIMEOUT] = str(spec.timeoutSeconds or DEFAULT_TIMEOUT_S)
    if spec.idleTimeoutSeconds:
        annotations[IDLE_TIMEOUT] = str(spec.idleTimeoutSeconds)
    return [
        {
            "apiVersion": "ami.dev/v1alpha1",
            "kind": "Workload",
            "metadata": {
                "name": r.name,
                "namespace": r.namespace,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": workload_spec,
        },
        _service(r.namespace, r.name, {REVISION_LABEL: r.name}, port, protocol, labels),
    ]


def _service(
    ns: str,
    name: str,
    selector: Mapping[str, str],
    target: int,
    protocol: str,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    port_name = "http2" if protocol == "HTTP2" else "http"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": {
            "selector": dict(selector),
            "ports": [{"name": port_name, "port": ROUTE_PORT, "targetPort": target}],
        },
    }


# --- routes ------------------------------------------------------------------------------


def _resolve(
    route: _Route,
    by_name: Mapping[tuple[str, str], RevisionRecord],
    latest_ready: Mapping[tuple[str, str], RevisionRecord],
    latest_created: Mapping[tuple[str, str], RevisionRecord],
) -> tuple[list[Target], str]:
    """The route's targets as revisions; what keeps it from being ready."""
    targets: list[Target] = []
    problems: list[str] = []
    for t in route.traffic:
        percent = t.percent or 0
        tag = t.tag or ""
        if t.revisionName and not t.latestRevision:
            if (route.namespace, t.revisionName) not in by_name:
                problems.append(f"revision {t.revisionName!r} referenced in traffic not found")
                continue
            targets.append(Target(t.revisionName, percent, tag))
            continue
        config = t.configurationName or route.service
        key = (route.namespace, config)
        found = latest_ready.get(key)
        if found is None:
            created = latest_created.get(key)
            if created is None:
                problems.append(f"configuration {config!r} has no revision")
                continue
            problems.append(f"revision {created.name!r} is not ready yet")
            found = created
        targets.append(Target(found.name, percent, tag, config, latest=True))
    return targets, "; ".join(problems)


def _route_hosts(
    route: _Route, targets: Sequence[Target], domain: str, network: kn_net.NetworkConfig
) -> list[str]:
    names = [route.name] + [network.tag_name(t.tag, route.name) for t in targets if t.tag]
    return [_host(network, name, route, domain) for name in names]


def _host(network: kn_net.NetworkConfig, name: str, route: _Route, domain: str) -> str:
    """The host of a route (or of one of its tags, by its tag name) in `domain`: by the
    `domain-template` outside the cluster, always NAME.NS.svc.cluster.local inside."""
    if domain == CLUSTER_DOMAIN:
        return f"{name}.{route.namespace}.{CLUSTER_DOMAIN}"
    return network.host(name, route.namespace, domain, route.annotations, route.labels)


def network_of(configmaps: Iterable[ConfigMap]) -> kn_net.NetworkConfig:
    """`knative-serving/config-network` (Knative's defaults without one; a bad one is
    refused when it is loaded, so the last good one is what is here)."""
    for cm in configmaps:
        if cm.namespace == KNATIVE_NAMESPACE and cm.name == kn_net.CONFIG_NAME:
            try:
                return kn_net.parse(cm.data)
            except kn_net.NetworkConfigError:
                break
    return kn_net.default()


def _route_resources(
    route: _Route,
    targets: Sequence[Target],
    by_name: Mapping[tuple[str, str], RevisionRecord],
    domain: str,
    external: bool,
    via: set[tuple[str, str]],
    network: kn_net.NetworkConfig,
) -> list[dict[str, Any]]:
    if not targets:
        return []
    ns = route.namespace
    first = by_name[(ns, targets[0].revision)]
    port, protocol = container_port(first.spec)
    # The route's own name in the mesh selects its service's instances (endpoints are
    # the revisions'; the VirtualService picks which).
    selector = (
        {SERVICE_LABEL: route.service}
        if route.service
        else {CONFIGURATION_LABEL: first.configuration}
    )
    labels = {**route.labels, ROUTE_LABEL: route.name}
    timeout = max(response_start_timeout(by_name[(ns, t.revision)].spec) for t in targets)
    protocols = {t.revision: container_port(by_name[(ns, t.revision)].spec)[1] for t in targets}
    out = [_service(ns, route.name, selector, port, protocol, labels)]
    split = [t for t in targets if t.percent > 0]
    out.append(
        _virtual_service(
            ns,
            route.name,
            _host(network, route.name, route, domain),
            split,
            domain,
            external,
            timeout,
            labels,
            via,
            protocols,
        )
    )
    for t in targets:
        if not t.tag:
            continue
        name = network.tag_name(t.tag, route.name)
        out.append(_service(ns, name, selector, port, protocol, labels))
        whole = [replace(t, percent=100)]
        out.append(
            _virtual_service(
                ns,
                name,
                _host(network, name, route, domain),
                whole,
                domain,
                external,
                timeout,
                labels,
                via,
                protocols,
            )
        )
    return out


def response_start_timeout(spec: RevisionSpec) -> int:
    """Seconds a request to the revision waits for its response to start before a 504:
    `timeoutSeconds` (300 by default), or `responseStartTimeoutSeconds` when shorter."""
    timeout = spec.timeoutSeconds or DEFAULT_TIMEOUT_S
    return min(timeout, spec.responseStartTimeoutSeconds or timeout)


def _virtual_service(
    ns: str,
    name: str,
    external_host: str,
    split: Sequence[Target],
    domain: str,
    external: bool,
    timeout_s: int,
    labels: Mapping[str, str],
    via: set[tuple[str, str]],
    protocols: Mapping[str, str],
) -> dict[str, Any]:
    hosts = [f"{name}.{ns}.{CLUSTER_DOMAIN}"]
    gateways = ["mesh"]
    if external and domain != CLUSTER_DOMAIN:
        hosts.append(external_host)
        gateways.append(INGRESS_GATEWAY_REF)
    weights: dict[str, int] = {}
    for t in split:  # two targets on one revision add up
        weights[t.revision] = weights.get(t.revision, 0) + t.percent
    route = [
        _destination(ns, rev, w, (ns, rev) in via, protocols.get(rev, "HTTP"))
        for rev, w in weights.items()
    ]
    # Not the route's `timeout`: Envoy's runs to the end of the response and, once the
    # response has started, can only reset the stream, so a slow body would be cut off
    # mid-way. A per-try timeout ends with a 504 only a request whose response has not
    # started (Envoy lets a started one run on); no retry condition of the mesh's
    # default retries covers it, so a timed-out request is not sent again.
    http: dict[str, Any] = {
        "route": route,
        "retries": {"attempts": ROUTE_RETRIES, "perTryTimeout": f"{timeout_s}s"},
        # The runtime contract's `Forwarded` (RFC 7239), beside Envoy's X-Forwarded-*:
        # the client this hop saw, and the scheme it used.
        "headers": {"request": {"add": {"forwarded": FORWARDED}}},
    }
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": {"hosts": hosts, "gateways": gateways, "http": [http] if route else []},
    }


def _destination(
    ns: str, revision: str, weight: int, activator: bool, protocol: str
) -> dict[str, Any]:
    """A revision's share: to its Service, or to the activator that holds it (on its
    HTTP/2 port for an h2c revision)."""
    if not activator:
        host = f"{revision}.{ns}.{CLUSTER_DOMAIN}"
        return {"destination": {"host": host, "port": {"number": ROUTE_PORT}}, "weight": weight}
    port = ACTIVATOR_H2_PORT if protocol == "HTTP2" else ROUTE_PORT
    return {
        "destination": {"host": ACTIVATOR_HOST, "port": {"number": port}},
        "weight": weight,
        "headers": {"request": {"set": {REVISION_HEADER: revision, NAMESPACE_HEADER: ns}}},
    }


def _activator_entry(port: int) -> dict[str, Any]:
    """The activator, to every proxy: the node agent's loopback listener."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": ACTIVATOR, "namespace": KNATIVE_NAMESPACE},
        "spec": {
            "hosts": [ACTIVATOR_HOST],
            "location": "MESH_EXTERNAL",
            "resolution": "STATIC",
            "ports": [
                {"number": ROUTE_PORT, "name": "http", "protocol": "HTTP", "targetPort": port},
                # The same listener: it tells HTTP/2's preface from HTTP/1.1.
                {
                    "number": ACTIVATOR_H2_PORT,
                    "name": "http2",
                    "protocol": "HTTP2",
                    "targetPort": port,
                },
            ],
            "endpoints": [{"address": "127.0.0.1"}],
        },
    }


def _ingress_port(resources: Iterable[Resource]) -> int:
    """The port Knative's routes take on the ingress gateway: the first plain HTTP port
    a user's Gateway already opens there (one URL for the mesh's apps and its Knative
    Services, told apart by Host), else Knative's 80."""
    ports = sorted(
        s.port.number
        for r in resources
        if isinstance(r, gw.Gateway) and r.spec.selector.get("istio") == "ingressgateway"
        for s in r.spec.servers
        if s.port.protocol.upper() == "HTTP"
    )
    return ports[0] if ports else ROUTE_PORT


def _ingress_gateway(port: int) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": INGRESS_GATEWAY, "namespace": KNATIVE_NAMESPACE},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {"port": {"number": port, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
            ],
        },
    }


# --- status ------------------------------------------------------------------------------


def _revision_status(
    r: RevisionRecord, ready: set[tuple[str, str]], problem: str = ""
) -> dict[str, Any]:
    ok = (r.namespace, r.name) in ready
    if problem:
        cond = Condition("Ready", "False", "ImageNotRunnable", problem)
    else:
        cond = Condition("Ready", "True" if ok else "Unknown", "" if ok else "Deploying")
    return {
        "conditions": [cond.to_json()],
        "configurationGeneration": r.generation,
        "serviceName": r.name,
    }


def _configuration_status(
    created: RevisionRecord | None, ready: RevisionRecord | None, problem: str | None
) -> dict[str, Any]:
    if problem:
        cond = Condition("Ready", "False", "RevisionFailed", problem)
    elif ready is not None and created is not None and ready.name == created.name:
        cond = Condition("Ready", "True")
    else:
        cond = Condition("Ready", "Unknown", "Deploying")
    out: dict[str, Any] = {"conditions": [cond.to_json()]}
    if created is not None:
        out["latestCreatedRevisionName"] = created.name
    if ready is not None:
        out["latestReadyRevisionName"] = ready.name
    return out


def _url(network: kn_net.NetworkConfig, name: str, route: _Route, domain: str) -> str:
    scheme = "http" if domain == CLUSTER_DOMAIN else network.external_scheme
    return f"{scheme}://{_host(network, name, route, domain)}"


def _route_status(
    route: _Route,
    targets: Sequence[Target],
    problem: str,
    domain: str,
    ready: set[tuple[str, str]],
    network: kn_net.NetworkConfig,
) -> dict[str, Any]:
    all_ready = bool(targets) and all((route.namespace, t.revision) in ready for t in targets)
    if problem and not targets:
        cond = Condition("Ready", "False", "RevisionMissing", problem)
    elif all_ready and not problem:
        cond = Condition("Ready", "True")
    else:
        cond = Condition("Ready", "Unknown", "RevisionMissing", problem)
    traffic = []
    for t in targets:
        entry: dict[str, Any] = {"revisionName": t.revision, "percent": t.percent}
        if t.latest:
            entry["latestRevision"] = True
            if t.configuration and route.service == "":
                entry["configurationName"] = t.configuration
        if t.tag:
            entry["tag"] = t.tag
            entry["url"] = _url(network, network.tag_name(t.tag, route.name), route, domain)
        traffic.append(entry)
    return {
        "conditions": [cond.to_json()],
        "url": _url(network, route.name, route, domain),
        "address": {"url": f"http://{route.name}.{route.namespace}.{CLUSTER_DOMAIN}"},
        "traffic": traffic,
    }


def _service_status(out: Expanded, svc: ks.Service) -> dict[str, Any]:
    ns, name = svc.namespace, svc.name
    config = out.status.get(("Configuration", ns, name), {})
    route = out.status.get(("Route", ns, name), {})
    config_ready = _condition(config, "Ready")
    route_ready = _condition(route, "Ready")
    both = (
        "True"
        if config_ready == route_ready == "True"
        else ("False" if "False" in (config_ready, route_ready) else "Unknown")
    )
    conditions = [
        {"type": "ConfigurationsReady", "status": config_ready},
        {"type": "Ready", "status": both},
        {"type": "RoutesReady", "status": route_ready},
    ]
    for cond, source in ((conditions[0], config), (conditions[2], route)):
        found: dict[str, Any] = next(
            (c for c in source.get("conditions", []) if c["type"] == "Ready"), {}
        )
        for key in ("reason", "message"):
            if key in found:
                cond[key] = found[key]
    # As Knative's condition sets: the top-level Ready says why, from the first
    # dependent condition that is False (else Unknown).
    for wanted in ("False", "Unknown"):
        culprit = next((c for c in (conditions[0], conditions[2]) if c["status"] == wanted), None)
        if culprit is not None and both == wanted:
            for key in ("reason", "message"):
                if key in culprit:
                    conditions[1][key] = culprit[key]
            break
    out_status: dict[str, Any] = {"conditions": conditions}
    for key in ("latestCreatedRevisionName", "latestReadyRevisionName"):
        if key in config:
            out_status[key] = config[key]
    for key in ("url", "address", "traffic"):
        if key in route:
            out_status[key] = route[key]
    return out_status


def _condition(status: Mapping[str, Any], kind: str) -> str:
    for c in status.get("conditions", []):
        if c.get("type") == kind:
            return str(c.get("status", "Unknown"))
    return "Unknown"
