"""References between Gateway API resources: which namespace and kind a reference
means once its defaults are applied, and whether a ReferenceGrant permits one that
crosses namespaces."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from amimesh.resources import gateway_api as ga

GROUP = ga.GROUP
CORE = ""


@dataclass(frozen=True)
class Ref:
    """A reference with its defaults applied."""

    group: str
    kind: str
    namespace: str
    name: str


def backend(ref: ga.BackendObjectReference, namespace: str) -> Ref:
    """A backendRef (or a mirror's) from a route in `namespace`: a Service unless it says."""
    return Ref(ref.group or CORE, ref.kind or "Service", ref.namespace or namespace, ref.name)


def secret(ref: ga.SecretObjectReference, namespace: str) -> Ref:
    return Ref(ref.group or CORE, ref.kind or "Secret", ref.namespace or namespace, ref.name)


def parent(ref: ga.ParentReference, namespace: str) -> Ref:
    """A route's parentRef: a Gateway unless it says (a Service: the mesh, GAMMA).
    `kind: Service` with no group is the core Service, as Istio reads it (its samples
    write it so)."""
    kind = ref.kind or "Gateway"
    group = ref.group if ref.group is not None else CORE if kind == "Service" else GROUP
    return Ref(group, kind, ref.namespace or namespace, ref.name)


def is_mesh(ref: Ref) -> bool:
    return ref.group == CORE and ref.kind == "Service"


def is_gateway(ref: Ref) -> bool:
    return ref.group == GROUP and ref.kind == "Gateway"


def permitted(
    grants: Iterable[ga.ReferenceGrant],
    from_group: str,
    from_kind: str,
    from_namespace: str,
    to: Ref,
) -> bool:
    """Whether a `from_kind` in `from_namespace` may name `to`: always within one
    namespace; across namespaces only by a ReferenceGrant in `to`'s namespace that
    lists both ends."""
    if from_namespace == to.namespace:
        return True
    for grant in grants:
        if grant.namespace != to.namespace:
            continue
        froms = any(
            f.group == from_group and f.kind == from_kind and f.namespace == from_namespace
            for f in grant.spec.from_
        )
        tos = any(
            t.group == to.group and t.kind == to.kind and t.name in (None, to.name)
            for t in grant.spec.to
        )
        if froms and tos:
            return True
    return False
