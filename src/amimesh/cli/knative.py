"""Knative Services, Revisions and Routes of a running mesh, in `kn`'s words: the
Python API under `ami service`, `ami revision` and `ami route`.

    api = client.connect(None)
    created = create_service(api, "hello", "default", TemplateFlags(image="...", cmd=(...)))
    ready = wait_ready(api, "default", "hello", timeout_s=60)
    update_service(api, "hello", "default", TemplateFlags(env=("TARGET=two",)))
    update_service(api, "hello", "default", traffic=TrafficFlags(traffic=("@latest=100",)))
    list_revisions(api, "default", service="hello")
    delete_service(api, "hello", "default")

Every change is Knative YAML applied through the API (`POST /api/v1/apply`), as `ami
apply -f` would send it: the API checks it with Knative's rules and answers with their
field paths (`client.ApiError`). What the controller made (revisions, a Service's
Route) is read from `GET /api/v1/resources`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import yaml

from amimesh.cli.client import ApiError, MeshClient
from amimesh.cli.ksvc_flags import FlagError, TemplateFlags, new_service, updated_service
from amimesh.cli.ksvc_traffic import TrafficFlags, compute

# Names the flags' YAML in the API's error lines, where a file's name would be.
SOURCE = "<flags>"
SERVICE_KIND = "ksvc"
SERVICE_REF = "Service.serving.knative.dev"
POLL_S = 0.5
# As kn's --wait-window: a Ready=False that lasts this long is a failure, not a step.
FAILED_FOR_S = 2.0

Item = dict[str, Any]
NO_CHANGE = TemplateFlags()
NO_TRAFFIC_CHANGE = TrafficFlags()


class NotFound(LookupError):
    """No such Knative Service, Revision or Route (exit 1)."""


class Exists(RuntimeError):
    """`create` of a Service that exists, without `force` (exit 1)."""


class NotReady(RuntimeError):
    """The Service failed, or was not Ready in time (exit 1)."""


# --- reading -----------------------------------------------------------------------------


def _list(api: MeshClient, kind: str, namespace: str | None, name: str = "") -> list[Item]:
    params = {"kind": kind, "namespace": namespace or "", "name": name}
    items: list[Item] = api.get("/api/v1/resources", params).get("items", [])
    return items


def list_services(api: MeshClient, namespace: str | None) -> list[Item]:
    """The Knative Services of `namespace` (None: every one), with their status."""
    return _list(api, SERVICE_KIND, namespace)


def get_service(api: MeshClient, namespace: str, name: str) -> Item:
    """One Knative Service with its status; `NotFound` naming it."""
    found = _list(api, SERVICE_KIND, namespace, name)
    if not found:
        raise NotFound(f'Knative Service "{name}" not found in namespace "{namespace}"')
    return found[0]


def list_revisions(
    api: MeshClient, namespace: str | None, service: str | None = None
) -> list[Item]:
    """The revisions of `namespace` (None: every one), or of one Knative Service (which
    must exist), sorted as kn sorts them: namespace, service, newest generation first."""
    if service is not None:
        get_service(api, namespace or "default", service)
    items = _list(api, "rev", namespace)
    if service is not None:
        items = [r for r in items if _labels(r).get(SERVICE_LABEL) == service]
    return sorted(items, key=_revision_order)


def get_revision(api: MeshClient, namespace: str, name: str) -> Item:
    found = _list(api, "rev", namespace, name)
    if not found:
        raise NotFound(f'revision "{name}" not found in namespace "{namespace}"')
    return found[0]


def list_routes(api: MeshClient, namespace: str | None) -> list[Item]:
    """The Routes of `namespace` (None: every one): each Knative Service's, and those
    written on their own."""
    return _list(api, "rt", namespace)


def instances(api: MeshClient) -> list[Item]:
    """The instances the node agents report (workload = revision name)."""
    rows: list[Item] = api.get("/api/v1/status").get("instances", [])
    return rows


SERVICE_LABEL = "serving.knative.dev/service"
GENERATION_LABEL = "serving.knative.dev/configurationGeneration"


def _labels(item: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = (item.get("metadata") or {}).get("labels") or {}
    return labels


def _revision_order(r: Mapping[str, Any]) -> tuple[str, str, int, str]:
    meta = r.get("metadata") or {}
    labels = _labels(r)
    try:
        generation = int(labels.get(GENERATION_LABEL, "0"))
    except ValueError:
        generation = 0
    return (meta.get("namespace", ""), labels.get(SERVICE_LABEL, ""), -generation, meta["name"])


# --- changing ----------------------------------------------------------------------------


def _apply(api: MeshClient, service: Mapping[str, Any]) -> str:
    """Apply one Service; the API's action (`created`, `configured`, `unchanged`)."""
    text = yaml.safe_dump(dict(service), sort_keys=False, allow_unicode=True)
    body = api.post_yaml("/api/v1/apply", text, {"source": SOURCE})
    results = body.get("results") or [{}]
    return str(results[0].get("action", "configured"))


def create_service(
    api: MeshClient, name: str, namespace: str, flags: TemplateFlags, *, force: bool = False
) -> tuple[Item, str]:
    """Create Knative Service `name` from the flags (with `force`, replace one that
    exists); the Service applied and the API's action. `Exists` without `force`."""
    service = new_service(name, namespace, flags)
    if not force and _list(api, SERVICE_KIND, namespace, name):
        raise Exists(
            f'Knative Service "{name}" already exists in namespace "{namespace}": use '
            "`ami service update`, or --force to replace it"
        )
    return service, _apply(api, service)


def update_service(
    api: MeshClient,
    name: str,
    namespace: str,
    flags: TemplateFlags = NO_CHANGE,
    traffic: TrafficFlags = NO_TRAFFIC_CHANGE,
) -> tuple[Item, str]:
    """Change Knative Service `name` by the flags; the Service applied and the API's
    action. A traffic target must name a revision of this Service (`FlagError`)."""
    if not flags.given() and not traffic.given():
        raise FlagError(
            f"ami service update {name}",
            "nothing to change: give a flag such as --image, --env or --traffic",
        )
    current = get_service(api, namespace, name)
    service = updated_service(current, flags)
    if traffic.given():
        spec = service["spec"]
        spec["traffic"] = compute(spec.get("traffic") or [], traffic)
        known = {r["metadata"]["name"] for r in list_revisions(api, namespace, name)}
        new_name = spec["template"].get("metadata", {}).get("name")
        for t in spec["traffic"]:
            revision = t.get("revisionName")
            if revision and revision not in known and revision != new_name:
                flag = "--traffic" if t.get("percent") else "--tag"
                raise FlagError(
                    f"{flag} {revision}",
                    f'no revision "{revision}" of Knative Service "{name}" (nor a tag of that '
                    f"name); its revisions: {', '.join(sorted(known)) or 'none'}",
                )
    return service, _apply(api, service)


def delete_service(api: MeshClient, name: str, namespace: str) -> Item:
    """Delete Knative Service `name` (its revisions go with it); the API's answer."""
    get_service(api, namespace, name)
    return _delete(api, SERVICE_KIND, namespace, name)


def delete_revision(api: MeshClient, name: str, namespace: str) -> Item:
    """Delete a revision no route references; `client.ApiError` (409) says why not."""
    get_revision(api, namespace, name)
    return _delete(api, "rev", namespace, name)


def _delete(api: MeshClient, kind: str, namespace: str, name: str) -> Item:
    path = "/".join(quote(p, safe="") for p in (kind, namespace, name))
    return api.delete(f"/api/v1/resources/{path}")


# --- waiting -----------------------------------------------------------------------------


def ready_condition(item: Mapping[str, Any]) -> dict[str, Any]:
    """The Ready condition; without a reason of its own, that of the first condition
    that is not True (a Service's ConfigurationsReady or RoutesReady says why)."""
    found = list((item.get("status") or {}).get("conditions") or ())
    ready = next((dict(c) for c in found if c.get("type") == "Ready"), None)
    ready = ready or {"type": "Ready", "status": "Unknown"}
    if ready.get("status") != "True" and not ready.get("reason"):
        why = next((c for c in found if c.get("status") != "True" and c.get("reason")), None)
        if why is not None:
            ready["reason"] = why["reason"]
            if why.get("message"):
                ready["message"] = why["message"]
    return ready


def wait_ready(
    api: MeshClient,
    namespace: str,
    name: str,
    *,
    timeout_s: float,
    on_change: Callable[[float, Mapping[str, Any]], None] = lambda _s, _c: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Item:
    """The Service once Ready, its latest revision ready and taking its traffic.
    `on_change(elapsed, condition)` hears each new state of its Ready condition;
    `NotReady` when Ready stays False (the reason, Knative's message) or time runs out."""
    start = clock()
    last: tuple[str, str, str] | None = None
    failing_since: float | None = None
    while True:
        item = get_service(api, namespace, name)
        cond = ready_condition(item)
        state = (str(cond.get("status")), str(cond.get("reason", "")), str(cond.get("message", "")))
        now = clock()
        if state != last:
            on_change(now - start, cond)
            last = state
        status = item.get("status") or {}
        if state[0] == "True" and status.get("latestReadyRevisionName") == status.get(
            "latestCreatedRevisionName"
        ):
            return item
        if state[0] == "False":
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= FAILED_FOR_S:
                reason = ": ".join(p for p in state[1:] if p) or "Ready is False"
                raise NotReady(f'Knative Service "{name}" failed: {reason}')
        else:
            failing_since = None
        if now - start >= timeout_s:
            why = ": ".join(p for p in state[1:] if p) or f"Ready is {state[0]}"
            raise NotReady(
                f'Knative Service "{name}" is not ready after {timeout_s:g}s ({why}); '
                "`ami service describe` shows where it is"
            )
        sleep(POLL_S)


__all__ = [
    "ApiError",
    "Exists",
    "FlagError",
    "NotFound",
    "NotReady",
    "TemplateFlags",
    "TrafficFlags",
    "create_service",
    "delete_revision",
    "delete_service",
    "get_revision",
    "get_service",
    "instances",
    "list_revisions",
    "list_routes",
    "list_services",
    "update_service",
    "wait_ready",
]
