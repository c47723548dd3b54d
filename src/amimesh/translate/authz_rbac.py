"""AuthorizationPolicies → Envoy RBAC filters, one per action, in Istio's order.

DENY policies share one filter (action DENY), AUDIT policies one that only marks
matching requests for the access log (action LOG), ALLOW policies one (action ALLOW).
An ALLOW filter with no Envoy policy in it refuses everything: that is how an ALLOW
policy without rules (`spec: {}`) denies all. A refused HTTP request gets Envoy's
local reply, 403 "RBAC: access denied"; a refused TCP connection is closed.

Envoy policies are named as Istio names them, `ns[NS]-policy[NAME]-rule[I]`, so stats
(`rbac.allow.policy.ns[shop]-policy[viewer]-rule[0].allowed` on HTTP ports) and debug
logs point back at the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeAlias

from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as rbac_filter_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from amimesh.model.authz import InboundPolicies
from amimesh.resources import istio_authz as authz
from amimesh.translate import authz_rules
from amimesh.translate.listener_hcm import http_filter

RBAC_FILTER = "envoy.filters.http.rbac"
Action: TypeAlias = rbac_pb2.RBAC.Action.ValueType
# Rewrites an Istio rule for where it applies; None drops it.
RuleFilter: TypeAlias = Callable[[authz.Rule, Action], authz.Rule | None]

STAT_PREFIX = {
    rbac_pb2.RBAC.DENY: "deny",
    rbac_pb2.RBAC.LOG: "audit",
    rbac_pb2.RBAC.ALLOW: "allow",
}


def by_action(
    policies: InboundPolicies,
) -> Iterator[tuple[Action, tuple[authz.AuthorizationPolicy, ...]]]:
    """(Envoy action, policies) for DENY, AUDIT (LOG), ALLOW, skipping empty ones."""
    for action, chosen in (
        (rbac_pb2.RBAC.DENY, policies.deny),
        (rbac_pb2.RBAC.LOG, policies.audit),
        (rbac_pb2.RBAC.ALLOW, policies.allow),
    ):
        if chosen:
            yield action, chosen


def rbac_filters(policies: InboundPolicies, port: authz_rules.Port) -> list[hcm_pb2.HttpFilter]:
    """The HTTP RBAC filters for `port`: DENY, then AUDIT, then ALLOW, each only if
    some policy has that action."""
    return [
        http_filter(
            RBAC_FILTER,
            rbac_filter_pb2.RBAC(
                rules=rules(action, chosen, port),
                rules_stat_prefix=STAT_PREFIX[action],
                track_per_rule_stats=True,
            ),
        )
        for action, chosen in by_action(policies)
    ]


def rules(
    action: Action,
    chosen: Sequence[authz.AuthorizationPolicy],
    port: authz_rules.Port,
    rule_filter: RuleFilter | None = None,
) -> rbac_pb2.RBAC:
    """One Envoy policy per rule of `chosen` (after `rule_filter`), with `action`."""
    out = rbac_pb2.RBAC(action=action)
    for p in chosen:
        for i, rule in enumerate(p.spec.rules):
            kept = rule_filter(rule, action) if rule_filter is not None else rule
            if kept is not None:
                name = f"ns[{p.namespace}]-policy[{p.name}]-rule[{i}]"
                out.policies[name].CopyFrom(authz_rules.policy(kept, port))
    return out
