"""The Python API behind `ami broker`, `ami trigger` and `ami event`.

    brokers = list_brokers(api, "default")          # Broker items with their status
    triggers = list_triggers(api, "default", broker="default")
    status, text = send_event(mesh_state, event, to_broker=("default", "default"))

`send_event` is the mesh operator's tool on the mesh's host, as `kn event send` is:
it posts to the broker process on its loopback port (found in the instance's files
under the mesh's state), not through a sidecar, so no AuthorizationPolicy of the mesh
applies to it. Apps send through their sidecars to the broker's address.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from amimesh.eventing.config import INGRESS, NAMESPACE
from amimesh.eventing.history import Record, decode_many

if TYPE_CHECKING:
    from amimesh.cli.client import MeshClient
    from amimesh.runtime.state import StateDir

Item = dict[str, Any]
SEND_TIMEOUT_S = 10.0


class NoBroker(LookupError):
    """The mesh runs no broker process (exit 1)."""


def _api_kind(kind: str) -> str:
    """The name the API resolves to Knative's kind alone (Tekton Triggers has a
    `Trigger` too)."""
    return f"{kind.lower()}.eventing.knative.dev" if kind in ("Broker", "Trigger") else kind


def _list(api: MeshClient, kind: str, namespace: str | None, name: str = "") -> list[Item]:
    params = {"kind": _api_kind(kind), "namespace": namespace or "", "name": name}
    items: list[Item] = api.get("/api/v1/resources", params).get("items", [])
    return items


def list_brokers(api: MeshClient, namespace: str | None) -> list[Item]:
    return _list(api, "Broker", namespace)


def list_triggers(api: MeshClient, namespace: str | None, broker: str | None = None) -> list[Item]:
    items = _list(api, "Trigger", namespace)
    if broker:
        items = [t for t in items if (t.get("spec") or {}).get("broker") == broker]
    return items


SOURCE = "<flags>"  # what `ami broker|trigger create` apply, as `ami service create`


def sink_of(text: str, namespace: str) -> dict[str, Any]:
    """A Destination from kn's `--sink`: `ksvc:NAME`, `svc:NAME`, `broker:NAME`, a URL,
    or a bare NAME (a Knative Service)."""
    if text.startswith(("http://", "https://")):
        return {"uri": text}
    prefix, sep, name = text.partition(":")
    if not sep:
        prefix, name = "ksvc", text
    kinds = {
        "ksvc": ("serving.knative.dev/v1", "Service"),
        "svc": ("v1", "Service"),
        "service": ("v1", "Service"),
        "broker": ("eventing.knative.dev/v1", "Broker"),
    }
    if prefix not in kinds or not name:
        raise ValueError(
            f"--sink takes ksvc:NAME, svc:NAME, broker:NAME, a URL or NAME, got {text!r}"
        )
    api_version, kind = kinds[prefix]
    return {"ref": {"apiVersion": api_version, "kind": kind, "name": name, "namespace": namespace}}


def broker_object(name: str, namespace: str, dead_letter: str | None = None) -> Item:
    spec: Item = {}
    if dead_letter:
        spec["delivery"] = {"deadLetterSink": sink_of(dead_letter, namespace)}
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def trigger_object(
    name: str, namespace: str, broker: str, sink: str, filters: Sequence[str] = ()
) -> Item:
    attributes: dict[str, str] = {}
    for pair in filters:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--filter takes KEY=VALUE, got {pair!r}")
        attributes[key] = value
    spec: Item = {"broker": broker, "subscriber": sink_of(sink, namespace)}
    if attributes:
        spec["filter"] = {"attributes": attributes}
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def create(api: MeshClient, obj: Item) -> str:
    """Apply a new Broker or Trigger (`Exists` when there is one of that name); the
    API's action."""
    import yaml

    from amimesh.cli.knative import Exists

    meta = obj["metadata"]
    if _list(api, obj["kind"], meta["namespace"], meta["name"]):
        raise Exists(
            f'{obj["kind"]} "{meta["name"]}" already exists in namespace "{meta["namespace"]}"'
        )
    text = yaml.safe_dump(obj, sort_keys=False)
    body = api.post_yaml("/api/v1/apply", text, {"source": SOURCE})
    results = body.get("results") or [{}]
    return str(results[0].get("action", "created"))


def delete(api: MeshClient, kind: str, namespace: str, name: str) -> Item:
    from urllib.parse import quote

    get_one(api, kind, namespace, name)
    path = "/".join(quote(p, safe="") for p in (_api_kind(kind), namespace, name))
    return api.delete(f"/api/v1/resources/{path}")


def get_one(api: MeshClient, kind: str, namespace: str, name: str) -> Item:
    from amimesh.cli.knative import NotFound

    items = _list(api, kind, namespace, name)
    if not items:
        raise NotFound(f'{kind} "{name}" not found in namespace "{namespace}"')
    return items[0]


@dataclass(frozen=True)
class Event:
    """An event to send, as `kn event send` builds one."""

    type: str
    source: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    data: bytes = b""
    content_type: str = "application/json"
    extensions: Mapping[str, str] = field(default_factory=dict)

    def binary(self) -> tuple[dict[str, str], bytes]:
        headers = {
            "ce-specversion": "1.0",
            "ce-id": self.id,
            "ce-source": self.source,
            "ce-type": self.type,
            **{f"ce-{k}": v for k, v in self.extensions.items()},
        }
        if self.data:
            headers["content-type"] = self.content_type
        return headers, self.data


def data_of(data: str | None, fields: Sequence[str]) -> bytes:
    """The body: `--data` as given, or `--field k=v` pairs as a JSON object (a value
    that reads as JSON is taken as that JSON, as kn's `--field` does)."""
    if data is not None and fields:
        raise ValueError("give --data or --field, not both")
    if data is not None:
        return data.encode()
    if not fields:
        return b""
    obj: dict[str, Any] = {}
    for pair in fields:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--field takes key=value, got {pair!r}")
        try:
            obj[key] = json.loads(value)
        except ValueError:
            obj[key] = value
    return json.dumps(obj).encode()


def broker_port(mesh: StateDir) -> int:
    """The broker process's loopback port in the running mesh `mesh`."""
    homes = (
        sorted(mesh.instances.glob(f"{INGRESS}-*.{NAMESPACE}")) if mesh.instances.is_dir() else []
    )
    for home in homes:
        try:
            agent = json.loads((home / "agent.json").read_text())
            return int(agent["proxy"]["inbound"][0]["app_port"])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
    raise NoBroker("the mesh runs no broker: define a Broker in its config (ami up starts it then)")


def send_event(mesh: StateDir, event: Event, namespace: str, broker: str) -> tuple[int, str]:
    """POST `event` to broker NAMESPACE/BROKER; (HTTP status, the answer's text)."""
    url = f"http://127.0.0.1:{broker_port(mesh)}/{namespace}/{broker}"
    return post(url, event)


def post(url: str, event: Event) -> tuple[int, str]:
    headers, body = event.binary()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=SEND_TIMEOUT_S) as resp:
            return int(resp.status), resp.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return int(e.code), e.read(4096).decode("utf-8", "replace")


def history_of(
    mesh: StateDir,
    namespace: str,
    broker: str,
    *,
    follow: Callable[[list[Record]], None] | None = None,
) -> list[Record]:
    """The broker's history records so far (`eventing.history`), read from the mesh's
    JetStream server with the mesh's credential; with `follow`, then each new batch
    is handed to it until interrupted."""
    import asyncio

    return asyncio.run(_history(mesh, namespace, broker, follow))


CONNECT_TIMEOUT_S = 10.0


async def _history(
    mesh: StateDir,
    namespace: str,
    broker: str,
    follow: Callable[[list[Record]], None] | None,
) -> list[Record]:
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import DeliverPolicy
    from nats.js.errors import NotFoundError

    from amimesh.controlplane import mesh_config
    from amimesh.eventing import jetstream
    from amimesh.runtime import nats as nats_server
    from amimesh.runtime import state

    port = mesh_config.read(mesh.path).nats_port
    if not port:
        raise NoBroker("the mesh runs no JetStream server: its config names a NATS cluster")
    # The server starts with the mesh's first Broker, and `ami up` notes its pid: its
    # port alone says nothing (until then, another process may have taken it).
    try:
        pid = int(json.loads(mesh.info_file.read_text()).get("nats_pid") or 0)
    except (OSError, ValueError, TypeError, AttributeError):
        pid = 0
    if not pid or not state.pid_alive(pid):
        raise NoBroker("the mesh runs no JetStream server: it has no Broker yet")
    user, password = jetstream.read_credentials(nats_server.credentials_path(mesh.path))
    try:  # a command answers: it does not wait for ever for a server that is not there
        nc = await asyncio.wait_for(
            jetstream.connect(nats_server.url(port), user, password), CONNECT_TIMEOUT_S
        )
    except TimeoutError:
        raise NoBroker(
            f"the mesh's JetStream server did not answer within {CONNECT_TIMEOUT_S:.0f}s"
        ) from None
    try:
        js = nc.jetstream()
        try:
            sub = await js.subscribe(
                jetstream.log_subject(namespace, broker),
                stream=jetstream.LOG_STREAM,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )
        except NotFoundError:  # no broker has run yet: no history
            return []
        records: list[Record] = []
        batch: list[Record] = []
        backlog = True
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except NatsTimeout:
                if backlog:
                    backlog = False
                    if follow is None:
                        return records
                if follow is not None and batch:
                    follow(batch)
                    batch = []
                continue
            got = decode_many(msg.data)
            records.extend(got)
            batch.extend(got)
            if backlog and msg.metadata.num_pending == 0:
                backlog = False
                if follow is None:
                    return records
    finally:
        await nc.close()


def condition(item: Mapping[str, Any]) -> tuple[str, str]:
    """(Ready's status, its reason and message) of a Broker or Trigger."""
    for c in (item.get("status") or {}).get("conditions", []):
        if c.get("type") == "Ready":
            why = " ".join(x for x in (c.get("reason", ""), c.get("message", "")) if x)
            return str(c.get("status", "Unknown")), why
    return "Unknown", ""
