"""Which resources a proxy needs because of others it accepted.

An accepted EDS cluster serves only once its ClusterLoadAssignment arrived; an
accepted listener whose connection manager uses RDS serves only once its
RouteConfiguration arrived. The stream state uses this to hold LDS until the
endpoints of accepted clusters went out, and to call a proxy synced only when the
children of what it accepted were delivered too.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet

from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE, Built
from amimesh.xds.refs import cluster_eds_name, listener_route_names

# Parent type -> the type of the resources it makes Envoy subscribe to.
CHILD_TYPE = {CLUSTER: ENDPOINT, LISTENER: ROUTE}

_NONE: frozenset[str] = frozenset()
_memo: weakref.WeakKeyDictionary[Built, frozenset[str]] = weakref.WeakKeyDictionary()


def children(parent: Built) -> frozenset[str]:
    """Names of the resources that `parent` makes Envoy fetch over ADS (EDS for a
    cluster, RDS for a listener); empty for any other resource."""
    # A `Built` is shared by every stream that holds it: decode it once.
    found = _memo.get(parent)
    if found is not None:
        return found
    if parent.type_url == CLUSTER:
        name = cluster_eds_name(parent.message, ads_only=True)
        found = frozenset([name]) if name is not None else _NONE
    elif parent.type_url == LISTENER:
        found = frozenset(listener_route_names(parent.message, ads_only=True))
    else:
        found = _NONE
    _memo[parent] = found
    return found


def missing(
    accepted: Iterable[str],
    parents: Mapping[str, Built],
    available: Mapping[str, Built],
    delivered: AbstractSet[str],
) -> bool:
    """Whether a child that an `accepted` parent needs, and that exists in
    `available`, is not among the `delivered` names; stops at the first one.

    A child the control plane does not generate is not waited for: waiting for it
    would wait forever (Envoy gives up on it by its own initial-fetch timeout).
    """
    for name in accepted:
        parent = parents.get(name)
        if parent is None:
            continue
        for child in children(parent):
            if child in available and child not in delivered:
                return True
    return False
