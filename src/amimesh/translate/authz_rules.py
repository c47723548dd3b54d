"""One AuthorizationPolicy rule → one Envoy RBAC policy, for one inbound port.

Istio's semantics: a rule matches when its `from`, `to` and `when` all match (each
absent part matches everything). Entries of `from` (and of `to`) are alternatives;
the fields of one source or operation must all match; the values of one field are
alternatives, and a `notX` field matches when none of its values does. `when`
conditions must all hold.

Envoy splits a policy into permissions (what is asked) and principals (who asks),
which must both match; each side here is an AND of everything that belongs to it.
Ports (`to.operation.ports`, `destination.port`) are the numbers users write: a
workload's port on a sidecar, a Gateway server port on a gateway. Neither is where
Envoy really listens (the runtime picks free ports), so they are decided here, per port.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from envoy.config.rbac.v3 import rbac_pb2

from amimesh.resources import istio_authz as authz
from amimesh.translate import authz_match as m
from amimesh.translate.authz_match import Permission, Principal


class Port(Protocol):
    """The port a rule is translated for: a sidecar's `InboundPort`, a gateway's
    `GatewayPort` or its server port plan; `port` is the number users write."""

    @property
    def port(self) -> int: ...


# `when` keys checked against the request (who asks) rather than the destination.
_PERMISSION_KEYS = frozenset({"destination.ip", "destination.port", "connection.sni"})


def policy(rule: authz.Rule, port: Port) -> rbac_pb2.Policy:
    permissions: list[Permission] = []
    principals: list[Principal] = []
    if rule.from_:
        principals.append(m.any_principal([_source(f.source) for f in rule.from_ if f.source]))
    if rule.to:
        permissions.append(
            m.any_permission([_operation(t.operation, port) for t in rule.to if t.operation])
        )
    for cond in rule.when:
        key = authz.parse_when_key(cond.key)
        if key is None:  # refused by validation
            raise ValueError(f"unknown when key {cond.key!r}")
        if key.name in _PERMISSION_KEYS:
            permissions.append(_destination_condition(key.name, cond, port))
        else:
            principals.append(_request_condition(key, cond))
    return rbac_pb2.Policy(
        permissions=[m.all_permissions(permissions)], principals=[m.all_principals(principals)]
    )


def _source(source: authz.Source) -> Principal:
    parts: list[Principal] = []
    fields: Sequence[tuple[list[str], list[str], Callable[[str], Principal]]] = (
        (source.principals, source.notPrincipals, m.peer_principal),
        (source.requestPrincipals, source.notRequestPrincipals, m.request_principal),
        (source.namespaces, source.notNamespaces, m.peer_namespace),
        (source.serviceAccounts, source.notServiceAccounts, m.peer_service_account),
        (source.ipBlocks, source.notIpBlocks, _direct_ip),
        (source.remoteIpBlocks, source.notRemoteIpBlocks, _remote_ip),
    )
    for values, not_values, one in fields:
        parts.extend(_principal_values(values, not_values, one))
    return m.all_principals(parts)


def _operation(operation: authz.Operation, port: Port) -> Permission:
    parts: list[Permission] = []
    on_port = _port_test(port)
    fields: Sequence[tuple[list[str], list[str], Callable[[str], Permission]]] = (
        (operation.hosts, operation.notHosts, lambda v: Permission(header=m.host(v))),
        (operation.ports, operation.notPorts, on_port),
        (
            operation.methods,
            operation.notMethods,
            lambda v: Permission(header=m.header(":method", v)),
        ),
        (operation.paths, operation.notPaths, m.path),
    )
    for values, not_values, one in fields:
        parts.extend(_permission_values(values, not_values, one))
    return m.all_permissions(parts)


def _port_test(port: Port) -> Callable[[str], Permission]:
    def test(value: str) -> Permission:
        return Permission(any=True) if int(value) == port.port else m.never()

    return test


def _destination_condition(name: str, cond: authz.Condition, port: Port) -> Permission:
    one: Callable[[str], Permission]
    if name == "destination.port":
        one = _port_test(port)
    elif name == "destination.ip":
        one = _destination_ip
    else:
        one = _server_name
    return m.all_permissions(_permission_values(cond.values, cond.notValues, one))


def _destination_ip(value: str) -> Permission:
    return Permission(destination_ip=m.cidr(value))


def _server_name(value: str) -> Permission:
    return Permission(requested_server_name=m.string(value))


def _request_condition(key: authz.WhenKey, cond: authz.Condition) -> Principal:
    one: Callable[[str], Principal]
    if key.name == authz.HEADER_KEY:
        one = partial(_header, key.args[0])
    elif key.name == authz.CLAIMS_KEY:
        one = partial(_claim, key.args)
    else:
        one = _REQUEST_KEYS[key.name]
    return m.all_principals(_principal_values(cond.values, cond.notValues, one))


def _direct_ip(value: str) -> Principal:
    return Principal(direct_remote_ip=m.cidr(value))


def _remote_ip(value: str) -> Principal:
    return Principal(remote_ip=m.cidr(value))


def _header(name: str, value: str) -> Principal:
    return Principal(header=m.header(name, value))


def _claim(path: Sequence[str], value: str) -> Principal:
    return m.claim(path, m.claim_value(value))


_REQUEST_KEYS: dict[str, Callable[[str], Principal]] = {
    "request.auth.principal": m.request_principal,
    "request.auth.audiences": partial(_claim, ["aud"]),
    "request.auth.presenter": partial(_claim, ["azp"]),
    "source.ip": _direct_ip,
    "remote.ip": _remote_ip,
    "source.namespace": m.peer_namespace,
    "source.principal": m.peer_principal,
}


def _principal_values(
    values: Sequence[str], not_values: Sequence[str], one: Callable[[str], Principal]
) -> list[Principal]:
    out = []
    if values:
        out.append(m.any_principal([one(v) for v in values]))
    if not_values:
        out.append(Principal(not_id=m.any_principal([one(v) for v in not_values])))
    return out


def _permission_values(
    values: Sequence[str], not_values: Sequence[str], one: Callable[[str], Permission]
) -> list[Permission]:
    out = []
    if values:
        out.append(m.any_permission([one(v) for v in values]))
    if not_values:
        out.append(m.no_permission(m.any_permission([one(v) for v in not_values])))
    return out
