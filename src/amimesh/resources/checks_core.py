"""Kubernetes Service and Ami Workload checks beyond the schema."""

from __future__ import annotations

import re
from collections.abc import Iterator

from amimesh.resources.checks_common import dns_label_problem, duplicates
from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import show
from amimesh.resources.kube import Service
from amimesh.resources.workload import (
    IDLE_TIMEOUT,
    MAX_CONCURRENCY,
    RELOAD,
    REQUEST_TIMEOUT,
    Workload,
    max_concurrency_problem,
    reload_problem,
    timeout_problem,
)

# Kubernetes names Services with RFC 1035 labels: they become host names.
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_service(svc: Service) -> Iterator[Issue]:
    if not _DNS_1035.match(svc.name):
        yield Issue(
            ("metadata", "name"),
            "a Service name must be at most 63 lowercase letters, digits and '-', starting "
            f"with a letter and ending with a letter or digit, got {show(svc.name)}",
        )
    ports = svc.spec.ports
    for i, port in enumerate(ports):
        if port.name is None:
            if len(ports) > 1:
                yield Issue(
                    ("spec", "ports", i, "name"), "is required when a Service has several ports"
                )
            continue
        problem = dns_label_problem(port.name)
        if problem is not None:
            yield Issue(("spec", "ports", i, "name"), problem)
    for first, later in duplicates(ports, lambda p: (p.port, p.protocol)):
        p = ports[later]
        yield Issue(
            ("spec", "ports", later, "port"),
            f"port {p.port}/{p.protocol} is already defined by ports[{first}]",
        )
    for first, later in duplicates(ports, lambda p: p.name):
        yield Issue(
            ("spec", "ports", later, "name"),
            f'port name "{ports[later].name}" is already used by ports[{first}]',
        )
    for i, port in enumerate(ports):
        if port.nodePort is not None and svc.spec.type not in ("NodePort", "LoadBalancer"):
            yield Issue(
                ("spec", "ports", i, "nodePort"),
                f'may not be used when type is "{svc.spec.type}" (as in Kubernetes)',
            )
    families = svc.spec.ipFamilies
    if len(set(families)) != len(families):
        yield Issue(("spec", "ipFamilies"), "must not name a family twice")
    elif len(families) == 2 and svc.spec.ipFamilyPolicy in (None, "SingleStack"):
        yield Issue(
            ("spec", "ipFamilies"),
            "two families need ipFamilyPolicy PreferDualStack or RequireDualStack",
        )


def check_workload(wl: Workload) -> Iterator[Issue]:
    annotations = wl.metadata.annotations
    problem = max_concurrency_problem(annotations)
    if problem is not None:
        yield Issue(
            ("metadata", "annotations", MAX_CONCURRENCY),
            f"{problem}, got {show(annotations[MAX_CONCURRENCY])}",
        )
    for key in (REQUEST_TIMEOUT, IDLE_TIMEOUT):
        problem = timeout_problem(annotations, key)
        if problem is not None:
            yield Issue(
                ("metadata", "annotations", key), f"{problem}, got {show(annotations[key])}"
            )
    problem = reload_problem(annotations)
    if problem is not None:
        yield Issue(
            ("metadata", "annotations", RELOAD), f"{problem}, got {show(annotations[RELOAD])}"
        )
    ports = wl.spec.ports
    for first, later in duplicates(ports, lambda p: p.port):
        yield Issue(
            ("spec", "ports", later, "port"),
            f"port {ports[later].port} is already defined by ports[{first}]",
        )
    for first, later in duplicates(ports, lambda p: p.name):
        yield Issue(
            ("spec", "ports", later, "name"),
            f'port name "{ports[later].name}" is already used by ports[{first}]',
        )
    probe = wl.spec.readinessProbe
    if probe is None:
        return
    action = "httpGet" if probe.httpGet is not None else "tcpSocket"
    handler = probe.httpGet or probe.tcpSocket
    port = handler.port if handler is not None else None
    names = {p.name for p in ports if p.name}
    where: Loc = ("spec", "readinessProbe", action, "port")
    if isinstance(port, str) and port not in names:
        known = ", ".join(sorted(names)) or "none"
        yield Issue(
            where, f"names no port of this Workload (its port names: {known}), got {show(port)}"
        )
    elif isinstance(port, int) and port not in {p.port for p in ports}:
        known = ", ".join(str(p.port) for p in ports) or "none"
        yield Issue(
            where,
            f"is no port of this Workload (its ports: {known}), got {port}: the probe "
            "reaches the app where the sidecar forwards that port",
        )
    elif port is None and not ports:
        yield Issue(where, "is required: the Workload declares no port for the probe to use")
