"""Knative Serving checks beyond the schema, after Knative's own validation
(knative/serving `pkg/apis/serving/v1/*_validation.go`, `pkg/apis/serving/
k8s_validation.go`, `metadata_validation.go`), applied to what the user wrote as
Knative's webhook applies them after its defaults.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

from amimesh.resources import knative_autoscaling as autoscaling
from amimesh.resources import knative_gc, knative_network
from amimesh.resources import knative_pod as pod
from amimesh.resources import knative_serving as kn
from amimesh.resources.checks_common import dns_label_problem, duplicates
from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import show
from amimesh.resources.images import image_problem
from amimesh.resources.kube import ConfigMap

# Kubernetes' name rules (k8s.io/apimachinery `util/validation`).
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

# What Knative keeps for itself (k8s_validation.go).
RESERVED_ENV = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")
RESERVED_PORTS = frozenset({8012, 8013, 8022, 9090, 9091, 8008})
RESERVED_CONTAINER_NAMES = frozenset({"queue-proxy"})


def check_config_map(cm: ConfigMap) -> Iterator[Issue]:
    """Knative's settings that Ami reads, read as Knative would: a bad `config-gc` or
    `config-network` is refused (the last good one keeps serving) rather than half applied."""
    if cm.namespace == kn.KNATIVE_NAMESPACE and cm.name == knative_gc.CONFIG_NAME:
        try:
            knative_gc.parse(cm.data)
        except knative_gc.GcConfigError as e:
            yield Issue(("data", e.key), str(e))
    if cm.namespace == kn.KNATIVE_NAMESPACE and cm.name == knative_network.CONFIG_NAME:
        try:
            knative_network.parse(cm.data)
        except knative_network.NetworkConfigError as e:
            yield Issue(("data", e.key), str(e))


def check_service(svc: kn.Service) -> Iterator[Issue]:
    yield from _name_issues(svc.name)
    yield from _no_autoscaling(svc.metadata.annotations)
    yield from template_issues(svc.spec.template, svc, ("spec", "template"))
    # A Service's traffic goes to its own configuration; with no traffic written,
    # Knative sends 100% to the latest revision.
    if svc.spec.traffic:
        yield from traffic_issues(svc.spec.traffic, ("spec", "traffic"), in_service=True)


def check_configuration(cfg: kn.Configuration) -> Iterator[Issue]:
    yield from _name_issues(cfg.name)
    yield from _no_autoscaling(cfg.metadata.annotations)
    yield from template_issues(cfg.spec.template, cfg, ("spec", "template"))


def check_revision(rev: kn.Revision) -> Iterator[Issue]:
    yield from _name_issues(rev.name)
    yield from autoscaling_issues(rev.metadata.annotations, ("metadata", "annotations"))
    yield from revision_spec_issues(rev.spec, ("spec",))


def check_route(rt: kn.Route) -> Iterator[Issue]:
    yield from _name_issues(rt.name)
    yield from _no_autoscaling(rt.metadata.annotations)
    yield from traffic_issues(rt.spec.traffic, ("spec", "traffic"), in_service=False)


def _name_issues(name: str) -> Iterator[Issue]:
    problem = dns_1035_problem(name)
    if problem is not None:
        yield Issue(("metadata", "name"), problem)


def dns_1035_problem(name: str) -> str | None:
    if len(name) <= 63 and _DNS_1035.match(name):
        return None
    return (
        "must be a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting "
        f"with a letter and ending with a letter or digit, got {show(name)}"
    )


def _no_autoscaling(annotations: Mapping[str, str]) -> Iterator[Issue]:
    for key in annotations:
        if autoscaling.is_autoscaling_key(key):
            yield Issue(
                ("metadata", "annotations", key),
                "autoscaling annotations must be put under spec.template.metadata.annotations "
                "to work",
            )


def autoscaling_issues(annotations: Mapping[str, str], loc: Loc) -> Iterator[Issue]:
    """The revision annotations the autoscaler reads, checked with Knative's rules and
    its default `config-autoscaler`, and no unknown autoscaling key. `initial-scale: 0`
    passes here: whether the mesh allows it is its `config-autoscaler`'s say
    (`allow-zero-initial-scale`), which the control plane reads when it scales."""
    _settings, problems = autoscaling.read_autoscaling(annotations, allow_zero_initial_scale=True)
    for key, message in autoscaling.unknown_keys(annotations) + problems:
        yield Issue((*loc, key), message)


def template_issues(
    template: kn.RevisionTemplate, parent: kn.Service | kn.Configuration, loc: Loc
) -> Iterator[Issue]:
    """The `spec.template` of `parent`, a Service or a Configuration."""
    name = template.metadata.name
    if name:
        where: Loc = (*loc, "metadata", "name")
        problem = dns_1035_problem(name)
        if problem is not None:
            yield Issue(where, problem)
        elif not name.startswith(f"{parent.name}-"):
            yield Issue(
                where,
                f"a revision name you bring must start with {show(parent.name + '-')} (the "
                f"name of its {parent.KIND} and a dash), got {show(name)}",
            )
    annotations = template.metadata.annotations
    yield from autoscaling_issues(annotations, (*loc, "metadata", "annotations"))
    yield from revision_spec_issues(template.spec, (*loc, "spec"))


def traffic_issues(
    traffic: Sequence[kn.TrafficTarget], loc: Loc, *, in_service: bool
) -> Iterator[Issue]:
    for i, target in enumerate(traffic):
        yield from _target_issues(target, (*loc, i), in_service)
    for first, later in duplicates(traffic, lambda t: t.tag or None):
        yield Issue(
            (*loc, later, "tag"), f'tag "{traffic[later].tag}" is already used by traffic[{first}]'
        )
    total = sum(t.percent or 0 for t in traffic)
    if total != 100:
        yield Issue(
            loc,
            f"the percents add up to {total}, they must add up to 100 (a target without "
            "percent gets 0)",
        )


def _target_issues(target: kn.TrafficTarget, loc: Loc, in_service: bool) -> Iterator[Issue]:
    revision, configuration = target.revisionName or None, target.configurationName or None
    if target.latestRevision is not None and target.latestRevision == bool(revision):
        if target.latestRevision:
            message = (
                f"cannot be true with revisionName {show(revision)}: a target follows the "
                "latest revision or pins one"
            )
        else:
            message = "false pins a revision: set revisionName, or make it true"
        yield Issue((*loc, "latestRevision"), message)
    if in_service and configuration is not None:
        yield Issue(
            (*loc, "configurationName"),
            "cannot be set in a Service: its traffic goes to its own configuration "
            "(latestRevision: true) or to one of its revisions (revisionName)",
        )
    elif revision is not None and configuration is not None:
        yield Issue(loc, "set only one of revisionName, configurationName")
    elif revision is not None or configuration is not None:
        field = "revisionName" if revision is not None else "configurationName"
        value = revision if revision is not None else configuration
        assert value is not None
        if len(value) > 63 or not _QUALIFIED_NAME.match(value):
            yield Issue((*loc, field), f"must be a resource name, got {show(value)}")
    elif not in_service:
        yield Issue(loc, "must set one of revisionName, configurationName")
    if target.tag:
        problem = dns_1035_problem(target.tag)
        if problem is not None:
            yield Issue((*loc, "tag"), problem)
    if target.url is not None:
        yield Issue((*loc, "url"), "is written by Knative in status; it cannot be set in spec")


def revision_spec_issues(spec: pod.RevisionSpec, loc: Loc) -> Iterator[Issue]:
    containers = spec.containers
    ports = [(i, j) for i, c in enumerate(containers) for j in range(len(c.ports))]
    for i, j in ports[1:]:
        one = "containers[{}].ports[{}]".format(*ports[0])
        yield Issue(
            (*loc, "containers", i, "ports", j),
            f"a revision serves one port, across all its containers, and {one} is it",
        )
    if not ports and len(containers) > 1:
        yield Issue(
            (*loc, "containers"),
            "with several containers, the one that serves must declare its port "
            "(ports: [{containerPort: ...}])",
        )
    serving = ports[0][0] if ports else 0
    for first, later in duplicates(containers, lambda c: c.name or None):
        yield Issue(
            (*loc, "containers", later, "name"),
            f'container name "{containers[later].name}" is already used by containers[{first}]',
        )
    for i, c in enumerate(containers):
        yield from _container_issues(c, (*loc, "containers", i), serving=i == serving)


def _container_issues(c: pod.Container, loc: Loc, *, serving: bool) -> Iterator[Issue]:
    if c.name:
        problem = dns_label_problem(c.name)
        if c.name in RESERVED_CONTAINER_NAMES:
            problem = f'"{c.name}" is a reserved container name'
        if problem is not None:
            yield Issue((*loc, "name"), problem)
    problem = image_problem(c.image) if c.image else "is required"
    if problem is not None:
        yield Issue((*loc, "image"), problem)
    reserved = RESERVED_ENV if serving else RESERVED_ENV[1:]
    for i, env in enumerate(c.env):
        if env.name in reserved:
            yield Issue(
                (*loc, "env", i, "name"),
                f'"{env.name}" is a reserved environment variable: Knative sets it',
            )
        elif not _ENV_NAME.match(env.name):
            yield Issue(
                (*loc, "env", i, "name"),
                "must be letters, digits, '_', '-' and '.', not starting with a digit, "
                f"got {show(env.name)}",
            )
    for i, port in enumerate(c.ports):
        if port.containerPort in RESERVED_PORTS:
            yield Issue(
                (*loc, "ports", i, "containerPort"),
                f"{port.containerPort} is a reserved port (Knative's queue-proxy uses it); "
                "use another",
            )
    probe = c.readinessProbe
    if probe is None:
        return
    where: Loc = (*loc, "readinessProbe")
    if not serving:
        yield Issue(
            where,
            "a container that does not serve takes no probe (Knative's "
            "multi-container-probing is off by default)",
        )
        return
    yield from _probe_issues(probe, c.ports[0].name if c.ports else "", where)


def _probe_issues(probe: pod.Probe, port_name: str, loc: Loc) -> Iterator[Issue]:
    if probe.httpGet is not None and probe.tcpSocket is not None:
        yield Issue((*loc, "tcpSocket"), "cannot be used together with httpGet")
    for action, handler in (("httpGet", probe.httpGet), ("tcpSocket", probe.tcpSocket)):
        port = handler.port if handler is not None else None
        # Knative names the serving port "http" when the user gives it no name.
        if isinstance(port, str) and port != (port_name or "http"):
            yield Issue(
                (*loc, action, "port"),
                f"must be the serving container's port ({show(port_name or 'http')} or its "
                f"number), got {show(port)}",
            )
    if probe.periodSeconds == 0:
        for name in ("failureThreshold", "timeoutSeconds"):
            if getattr(probe, name) != 0:
                yield Issue(
                    (*loc, name),
                    "cannot be set without periodSeconds: with periodSeconds 0 (the default) "
                    "Knative probes aggressively until the container is ready",
                )
