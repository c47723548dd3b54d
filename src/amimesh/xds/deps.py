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


def required(
    accepted: AbstractSet[str], parents: Mapping[str, Built], available: Mapping[str, Built]
) -> AbstractSet[str]:
    """Child names needed by the `accepted` parents that exist in `available`.

    A child the control plane does not generate is left out: waiting for it would
    wait forever (Envoy gives up on it by its own initial-fetch timeout). When every
    parent was accepted (the usual case), the answer depends on the two tables alone,
    which many proxies share: it is computed once and shared.
    """
    if len(accepted) != len(parents) or accepted != parents.keys():
        return _required(accepted, parents, available)
    key = (id(parents), id(available))
    hit = _all_accepted.get(key)
    if hit is not None and hit[0] is parents and hit[1] is available:
        return hit[2]
    needed = frozenset(_required(parents.keys(), parents, available))
    if len(_all_accepted) >= _MAX_SHARED:
        _all_accepted.clear()
    _all_accepted[key] = (parents, available, needed)
    return needed


# (id(parents), id(available)) -> (parents, available, needed): the tables are kept
# so that their ids stay theirs.
_all_accepted: dict[
    tuple[int, int], tuple[Mapping[str, Built], Mapping[str, Built], frozenset[str]]
] = {}
_MAX_SHARED = 256


def _required(
    accepted: Iterable[str], parents: Mapping[str, Built], available: Mapping[str, Built]
) -> set[str]:
    needed: set[str] = set()
    for name in accepted:
        parent = parents.get(name)
        if parent is not None:
            needed.update(c for c in children(parent) if c in available)
    return needed
