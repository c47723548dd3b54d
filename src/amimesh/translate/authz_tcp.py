"""AuthorizationPolicies on a TCP port: Envoy's network RBAC filter, before the TCP proxy.

A TCP connection has no method, path, host, header or token, so rules are rewritten as
Istio does for TCP workloads:

- an ALLOW rule that names anything HTTP-only is dropped: it cannot match (an ALLOW
  policy left without rules then refuses every connection, as `spec: {}` does);
- a DENY or AUDIT rule loses its HTTP-only parts and keeps the rest, so it refuses (or
  marks) more, never less.

HTTP-only: `to.operation` hosts, methods, paths (and their `not` forms),
`from.source` requestPrincipals and notRequestPrincipals, and `when` keys
`request.headers[...]` and `request.auth.*`. Peers, namespaces, service accounts, IP
blocks, ports, `destination.ip`, `connection.sni` stay. The filter decides on the
connection's first bytes; a refused connection is closed.
"""

from __future__ import annotations

from typing import TypeVar

from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2

from amimesh.model.authz import InboundPolicies
from amimesh.resources import istio_authz as authz
from amimesh.translate.authz_rbac import STAT_PREFIX, Action, by_action, rules
from amimesh.translate.authz_rules import Port
from amimesh.translate.listener_hcm import pack

NETWORK_RBAC_FILTER = "envoy.filters.network.rbac"
_HTTP_SOURCE = ("requestPrincipals", "notRequestPrincipals")
_HTTP_OPERATION = ("hosts", "notHosts", "methods", "notMethods", "paths", "notPaths")
_HTTP_KEYS = (authz.HEADER_KEY, authz.CLAIMS_KEY, "request.auth.")

Part = TypeVar("Part", authz.RuleFrom, authz.RuleTo)


def network_filters(policies: InboundPolicies, port: Port) -> list[listener_components_pb2.Filter]:
    """The network RBAC filters for TCP port `port`: DENY, AUDIT, ALLOW."""
    return [
        listener_components_pb2.Filter(
            name=NETWORK_RBAC_FILTER,
            typed_config=pack(
                network_rbac_pb2.RBAC(
                    rules=rules(action, chosen, port, tcp_rule),
                    stat_prefix=f"inbound_{port.port}.{STAT_PREFIX[action]}.",
                )
            ),
        )
        for action, chosen in by_action(policies)
    ]


def tcp_rule(rule: authz.Rule, action: Action) -> authz.Rule | None:
    """`rule` as it applies to a TCP connection; None when it cannot match."""
    if not _names_http(rule):
        return rule
    if action == rbac_pb2.RBAC.ALLOW:
        return None
    return rule.model_copy(
        update={
            "from_": [_without(f, "source", _HTTP_SOURCE) for f in rule.from_],
            "to": [_without(t, "operation", _HTTP_OPERATION) for t in rule.to],
            "when": [c for c in rule.when if not _http_key(c.key)],
        }
    )


def _names_http(rule: authz.Rule) -> bool:
    for f in rule.from_:
        if f.source is not None and any(getattr(f.source, n) for n in _HTTP_SOURCE):
            return True
    for t in rule.to:
        if t.operation is not None and any(getattr(t.operation, n) for n in _HTTP_OPERATION):
            return True
    return any(_http_key(c.key) for c in rule.when)


def _http_key(key: str) -> bool:
    return key.startswith(_HTTP_KEYS)


def _without(part: Part, attr: str, names: tuple[str, ...]) -> Part:
    """`part` with its `attr` (a source or an operation) cleared of `names`."""
    inner = getattr(part, attr)
    if inner is None:
        return part
    return part.model_copy(update={attr: inner.model_copy(update={n: [] for n in names})})
