"""ApiServerSource: an event for every change of the mesh's resources a source
watches. Pure: the control plane hands in its resources before and after a change.

    for e in changes(sources, before, after, ids=..., time=...):
        post e.body with e.headers to the source's channel

Knative's events (knative/eventing `pkg/adapter/apiserver`): type
`dev.knative.apiserver.resource.add|update|delete` with the object as data (mode
`Resource`) or `dev.knative.apiserver.ref.add|update|delete` with its reference
(`apiVersion`, `kind`, `name`, `namespace`; mode `Reference`, the default); subject
the object's path (`/apis/GROUP/VERSION/namespaces/NS/PLURAL/NAME`, `/api/v1/...` for
the core group); source `ami://controlplane`; and, as Knative's, the object's `kind`,
`apiversion`, `name` and `namespace` as extensions, for triggers to filter on. A
source watches the resources of its namespace whose apiVersion and kind it lists (and
whose labels its selector matches), and sends each event its `filters` (a Trigger's
dialects) do not fail, before its `ceOverrides` are added, as Knative's adapter does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from amimesh.eventing import filters
from amimesh.resources import knative_eventing as ke
from amimesh.resources.meta import Resource

SOURCE = "ami://controlplane"
Key = tuple[str, str, str]


@dataclass(frozen=True)
class Emitted:
    """One event of one ApiServerSource: where it goes and what it is."""

    namespace: str
    source: str  # the ApiServerSource's name
    headers: Mapping[str, str]
    body: bytes


def channel_of(name: str) -> str:
    """The channel an ApiServerSource's events go through to its sink."""
    return f"apiserversource-{name}"


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith(("s", "x", "ch", "sh")) else "s")


def subject(r: Resource) -> str:
    group = r.API_GROUP
    version = r.apiVersion.rpartition("/")[2]
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{base}/namespaces/{r.namespace}/{_plural(r.KIND)}/{r.name}"


def watches(src: ke.ApiServerSource, r: Resource) -> bool:
    if r.namespace != src.namespace:
        return False
    for want in src.spec.resources:
        group = want.apiVersion.rpartition("/")[0]
        if (group, want.kind) != (r.API_GROUP, r.KIND):
            continue
        labels = r.metadata.labels
        wanted = want.selector.matchLabels if want.selector is not None else {}
        if all(labels.get(k) == v for k, v in wanted.items()):
            return True
    return False


def _event(
    src: ke.ApiServerSource, r: Resource, verb: str, event_id: str, time: str
) -> Emitted | None:
    """The event, or None when the source's filters leave it out."""
    if src.spec.mode == "Resource":
        kind = "resource"
        data: Any = r.model_dump(mode="json", by_alias=True, exclude_none=True)
    else:
        kind = "ref"
        data = {
            "apiVersion": r.apiVersion,
            "kind": r.KIND,
            "name": r.name,
            "namespace": r.namespace,
        }
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": SOURCE,
        "ce-type": f"dev.knative.apiserver.{kind}.{verb}",
        "ce-subject": subject(r),
        "ce-time": time,
        "ce-kind": r.KIND,
        "ce-apiversion": r.apiVersion,
        "ce-name": r.name,
        "ce-namespace": r.namespace,
        "content-type": "application/json",
    }
    if src.spec.filters:
        wanted = [
            f.model_dump(mode="json", by_alias=True, exclude_none=True) for f in src.spec.filters
        ]
        attributes = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        attributes["datacontenttype"] = headers["content-type"]
        if filters.all_of(wanted, attributes) is filters.Result.FAIL:
            return None
    if src.spec.ceOverrides is not None:
        headers.update({f"ce-{k}": v for k, v in src.spec.ceOverrides.extensions.items()})
    return Emitted(src.namespace, src.name, headers, json.dumps(data).encode())


def changes(
    before: Mapping[Key, Resource],
    after: Mapping[Key, Resource],
    *,
    ids: Callable[[], str],
    time: str,
) -> list[Emitted]:
    """The events of every ApiServerSource of `after` for what changed from `before`
    (a source added with the change reports what changes after it)."""
    sources = [r for r in after.values() if isinstance(r, ke.ApiServerSource)]
    out: list[Emitted] = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old is not None and new is not None and old == new:
            continue
        verb = "add" if old is None else "delete" if new is None else "update"
        r = new if new is not None else old
        assert r is not None
        for src in sources:
            if watches(src, r):
                event = _event(src, r, verb, ids(), time)
                if event is not None:
                    out.append(event)
    return out


def by_key(resources: Iterable[Resource]) -> dict[Key, Resource]:
    return {r.key: r for r in resources}
