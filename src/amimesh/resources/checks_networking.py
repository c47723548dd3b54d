"""DestinationRule, ServiceEntry and WorkloadEntry checks beyond the schema."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from amimesh.resources import istio_networking as net
from amimesh.resources.checks_common import (
    dns_label_problem,
    duplicates,
    export_to_issues,
    host_problem,
)
from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import is_ip, show

_HASH_KEYS = ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName")


def check_destination_rule(dr: net.DestinationRule) -> Iterator[Issue]:
    spec = dr.spec
    problem = host_problem(spec.host, wildcard=True)
    if problem is not None:
        yield Issue(("spec", "host"), problem)
    yield from _traffic_policy_issues(spec.trafficPolicy, ("spec", "trafficPolicy"))
    for i, subset in enumerate(spec.subsets):
        problem = dns_label_problem(subset.name)
        if problem is not None:
            yield Issue(("spec", "subsets", i, "name"), problem)
        loc: Loc = ("spec", "subsets", i, "trafficPolicy")
        yield from _traffic_policy_issues(subset.trafficPolicy, loc)
    for first, later in duplicates(spec.subsets, lambda s: s.name):
        yield Issue(
            ("spec", "subsets", later, "name"),
            f'subset "{spec.subsets[later].name}" is already defined by subsets[{first}]',
        )
    yield from export_to_issues(spec.exportTo, ("spec", "exportTo"))


def _traffic_policy_issues(policy: net.TrafficPolicy | None, loc: Loc) -> Iterator[Issue]:
    if policy is None:
        return
    yield from _settings_issues(policy, loc)
    for i, port_policy in enumerate(policy.portLevelSettings):
        where: Loc = (*loc, "portLevelSettings", i)
        if all(
            getattr(port_policy, f) is None
            for f in ("loadBalancer", "connectionPool", "outlierDetection", "tls")
        ):
            yield Issue(
                where,
                "must set at least one of loadBalancer, connectionPool, outlierDetection, tls",
            )
        yield from _settings_issues(port_policy, where)
    for first, later in duplicates(policy.portLevelSettings, lambda p: p.port.number):
        yield Issue(
            (*loc, "portLevelSettings", later, "port", "number"),
            f"port {policy.portLevelSettings[later].port.number} already has settings in "
            f"portLevelSettings[{first}]",
        )


def _settings_issues(
    policy: net.TrafficPolicy | net.PortTrafficPolicy, loc: Loc
) -> Iterator[Issue]:
    od = policy.outlierDetection
    if od is not None and od.consecutiveErrors is not None:
        newer = [
            k
            for k in ("consecutive5xxErrors", "consecutiveGatewayErrors")
            if getattr(od, k) is not None
        ]
        if newer:
            yield Issue(
                (*loc, "outlierDetection", "consecutiveErrors"),
                f"cannot be used with {' and '.join(newer)}: it is their deprecated form "
                "(it counts gateway errors, as consecutiveGatewayErrors does)",
            )
    lb = policy.loadBalancer
    if lb is None:
        return
    lb_loc = (*loc, "loadBalancer")
    if lb.warmup is not None and lb.warmupDurationSecs is not None:
        yield Issue(
            (*lb_loc, "warmupDurationSecs"),
            "cannot be used with warmup: it is warmup's deprecated form (warmup.duration)",
        )
    for name in ("warmup", "warmupDurationSecs"):
        if getattr(lb, name) is not None and (
            lb.consistentHash is not None or lb.simple == "RANDOM"
        ):
            used = "consistentHash" if lb.consistentHash is not None else "RANDOM"
            yield Issue(
                (*lb_loc, name),
                "is used only with ROUND_ROBIN or LEAST_REQUEST balancing (Envoy's slow "
                f"start); this rule uses {used}",
            )
    if lb.simple is not None and lb.consistentHash is not None:
        yield Issue(
            (*lb_loc, "consistentHash"),
            "cannot be used together with simple: choose one load-balancing policy",
        )
    if lb.consistentHash is not None:
        ch = lb.consistentHash
        keys = [k for k in _HASH_KEYS if getattr(ch, k) not in (None, False)]
        if len(keys) != 1:
            got = " and ".join(keys) if keys else "none"
            yield Issue(
                (*lb_loc, "consistentHash"),
                f"must set exactly one hash key of {', '.join(_HASH_KEYS)} (got {got})",
            )
    locality = lb.localityLbSetting
    if locality is not None:
        where = (*lb_loc, "localityLbSetting")
        if locality.distribute and locality.failover:
            yield Issue((*where, "failover"), "cannot be used together with distribute")
        for i, rule in enumerate(locality.distribute):
            total = sum(rule.to.values())
            if total != 100:
                yield Issue(
                    (*where, "distribute", i, "to"), f"weights must add up to 100, got {total}"
                )


def check_service_entry(se: net.ServiceEntry) -> Iterator[Issue]:
    spec = se.spec
    for i, host in enumerate(spec.hosts):
        problem = 'must not be "*"' if host == "*" else host_problem(host, wildcard=True)
        if problem is not None:
            yield Issue(("spec", "hosts", i), problem)
    for i, address in enumerate(spec.addresses):
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            yield Issue(
                ("spec", "addresses", i), f"must be an IP address or CIDR, got {show(address)}"
            )
    yield from _port_issues(spec)
    yield from _endpoint_issues(spec)
    yield from export_to_issues(spec.exportTo, ("spec", "exportTo"))


def _port_issues(spec: net.ServiceEntrySpec) -> Iterator[Issue]:
    for first, later in duplicates(spec.ports, lambda p: p.number):
        yield Issue(
            ("spec", "ports", later, "number"),
            f"port {spec.ports[later].number} is already defined by ports[{first}]",
        )
    for first, later in duplicates(spec.ports, lambda p: p.name):
        yield Issue(
            ("spec", "ports", later, "name"),
            f'port name "{spec.ports[later].name}" is already used by ports[{first}]',
        )


def _endpoint_issues(spec: net.ServiceEntrySpec) -> Iterator[Issue]:
    resolution = spec.resolution
    if spec.workloadSelector is not None and spec.endpoints:
        yield Issue(("spec", "workloadSelector"), "cannot be used together with endpoints")
    if resolution == "NONE" and spec.endpoints:
        yield Issue(("spec", "endpoints"), "must be empty when resolution is NONE")
    if resolution == "STATIC" and not spec.endpoints and spec.workloadSelector is None:
        yield Issue(
            ("spec", "endpoints"),
            "resolution STATIC needs endpoints with addresses, or a workloadSelector",
        )
    if resolution in ("DNS", "DNS_ROUND_ROBIN") and not spec.endpoints:
        for i, host in enumerate(spec.hosts):
            if host.startswith("*"):
                yield Issue(
                    ("spec", "hosts", i),
                    f"must not be a wildcard when resolution is {resolution} without endpoints",
                )
    if resolution == "DNS_ROUND_ROBIN" and len(spec.endpoints) > 1:
        yield Issue(("spec", "endpoints"), "may have at most one entry with DNS_ROUND_ROBIN")
    port_names = {p.name for p in spec.ports}
    for i, endpoint in enumerate(spec.endpoints):
        loc: Loc = ("spec", "endpoints", i)
        if resolution == "STATIC":
            yield from _static_address_issues(endpoint.address, (*loc, "address"))
        for name in endpoint.ports:
            if name not in port_names:
                known = ", ".join(sorted(port_names)) or "none"
                yield Issue(
                    (*loc, "ports", name),
                    f"names no port of this ServiceEntry (its port names: {known})",
                )


def _static_address_issues(address: str | None, loc: Loc) -> Iterator[Issue]:
    if address is None:
        yield Issue(loc, "is required when resolution is STATIC")
    elif not (is_ip(address) or address.startswith("unix://")):
        yield Issue(
            loc,
            f"must be an IP address when resolution is STATIC, got {show(address)} "
            "(use resolution DNS for host names)",
        )


def check_workload_entry(we: net.WorkloadEntry) -> Iterator[Issue]:
    if we.spec.address is None:
        yield Issue(("spec", "address"), "is required")
    for name in we.spec.ports:
        problem = dns_label_problem(name)
        if problem is not None:
            yield Issue(("spec", "ports", name), f"port name {problem}")
