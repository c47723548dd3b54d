"""What the broker process serves, as the expansion writes it into its environment
(`AMI_EVENTING_CONFIG`: base64 of this JSON): the brokers and channels (a JetStream
stream each), the triggers and subscriptions (a durable consumer each), the
PingSources, and how many replicas each stream has. Pure.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from amimesh.eventing.delivery import Delivery

NAMESPACE = "knative-eventing"
INGRESS = "broker-ingress"
INGRESS_HOST = f"{INGRESS}.{NAMESPACE}.svc.cluster.local"
SERVICE_ACCOUNT = "mt-broker-ingress"
INGRESS_PORT = 8080
CONFIG_ENV = "AMI_EVENTING_CONFIG"  # base64 of the JSON of `BrokerConfig`
NATS_URL_ENV = "AMI_NATS_URL"
NATS_CREDENTIALS_ENV = "AMI_NATS_CREDENTIALS"  # a file: `user:password`
BROKER_MODULE = "amimesh.eventing.broker_main"


@dataclass(frozen=True)
class Runner:
    """How the broker process runs here: the Python that runs it, and the JetStream
    server it stores events in ("": the mesh has none, and no broker runs)."""

    python: str
    nats_url: str = ""
    credentials: str = ""  # the credential file's path
    # Where the control plane writes the credentials of brokers' Secrets (`secrets`
    # of the plan), one file each.
    secrets_dir: str = ""


@dataclass(frozen=True)
class PingEntry:
    """A PingSource as the broker process runs it."""

    namespace: str
    name: str
    schedule: str
    timezone: str
    sink: str
    content_type: str = ""
    data: str = ""
    data_base64: str = ""
    extensions: Mapping[str, str] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"/apis/v1/namespaces/{self.namespace}/pingsources/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "extensions": dict(self.extensions)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PingEntry:
        return cls(**data)


@dataclass(frozen=True)
class BrokerEntry:
    """A Broker, or a channel (`kind` "channel": a Channel, an InMemoryChannel, or one
    a Sequence or Parallel is made of): one stream each."""

    namespace: str
    name: str
    kind: str = "broker"
    # Its stream's settings (`eventing.brokerconfig`): the servers ("": the mesh's)
    # and the file with their credential, the replicas (0: the mesh's), retention,
    # the oldest event kept (0: no limit) and its size.
    servers: str = ""
    credentials: str = ""
    replicas: int = 0
    retention: str = "interest"
    max_age_s: float = 0.0
    max_bytes: int = 1 << 30

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BrokerEntry:
        return cls(**data)

    @property
    def connection(self) -> tuple[str, str]:
        """Which JetStream client serves it: ("", "") is the mesh's."""
        return (self.servers, self.credentials)

    @property
    def is_channel(self) -> bool:
        return self.kind == "channel"

    @property
    def stream(self) -> str:
        # Namespaces and these names have no `_` nor `.`: the name is unique.
        return f"{'KNC' if self.is_channel else 'KNB'}_{self.namespace}_{self.name}"

    @property
    def subject(self) -> str:
        return f"{'knc' if self.is_channel else 'knb'}.{self.namespace}.{self.name}"

    @property
    def url(self) -> str:
        if self.is_channel:
            return channel_url(self.namespace, self.name)
        return broker_url(self.namespace, self.name)


@dataclass(frozen=True)
class TriggerEntry:
    namespace: str
    name: str
    broker: str
    subscriber: str  # a URL, reached through the broker's sidecar
    delivery: Delivery
    attributes: Mapping[str, str] | None = None
    filters: Sequence[Mapping[str, Any]] = ()
    # A channel's subscription: its `broker` is the channel; a reply goes to `reply`
    # (a URL, "" to drop it) rather than back into the channel.
    subscription: bool = False
    reply: str = ""
    # The subscriber's cluster (`outbound|PORT||HOST`) when its deliveries may go
    # straight to its instances' inbound sidecars (`addressing.direct_cluster`); "":
    # always through the broker's sidecar.
    direct: str = ""

    @property
    def durable(self) -> str:
        # Trigger names may hold `.`, which JetStream names may not; `_` is in no
        # Kubernetes name, so the mapping is one to one.
        return f"{'S' if self.subscription else 'T'}_{self.name.replace('.', '_')}"

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "broker": self.broker,
            "subscriber": self.subscriber,
            "delivery": self.delivery.to_json(),
            "attributes": dict(self.attributes) if self.attributes is not None else None,
            "filters": [dict(f) for f in self.filters],
            "subscription": self.subscription,
            "reply": self.reply,
            "direct": self.direct,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TriggerEntry:
        return cls(
            namespace=str(data["namespace"]),
            name=str(data["name"]),
            broker=str(data["broker"]),
            subscriber=str(data["subscriber"]),
            delivery=Delivery.from_json(data["delivery"]),
            attributes=data.get("attributes"),
            filters=tuple(data.get("filters") or ()),
            subscription=bool(data.get("subscription", False)),
            reply=str(data.get("reply", "")),
            direct=str(data.get("direct", "")),
        )


@dataclass(frozen=True)
class BrokerConfig:
    """What the broker process serves."""

    brokers: tuple[BrokerEntry, ...] = ()
    triggers: tuple[TriggerEntry, ...] = ()
    pings: tuple[PingEntry, ...] = ()
    replicas: int = 1  # of each stream: 1 on the embedded server, up to 5 in a cluster

    def to_json(self) -> dict[str, Any]:
        return {
            "replicas": self.replicas,
            "brokers": [b.to_json() for b in self.brokers],
            "triggers": [t.to_json() for t in self.triggers],
            "pings": [p.to_json() for p in self.pings],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BrokerConfig:
        return cls(
            brokers=tuple(BrokerEntry.from_json(b) for b in data["brokers"]),
            triggers=tuple(TriggerEntry.from_json(t) for t in data["triggers"]),
            pings=tuple(PingEntry.from_json(p) for p in data.get("pings", ())),
            replicas=int(data.get("replicas", 1)),
        )

    def encode(self) -> str:
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return base64.b64encode(text.encode()).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> BrokerConfig:
        return cls.from_json(json.loads(base64.b64decode(text)))

    def broker(self, namespace: str, name: str, kind: str = "broker") -> BrokerEntry | None:
        return next(
            (b for b in self.brokers if (b.namespace, b.name, b.kind) == (namespace, name, kind)),
            None,
        )


def broker_url(namespace: str, name: str) -> str:
    return f"http://{INGRESS_HOST}/{namespace}/{name}"


def channel_url(namespace: str, name: str) -> str:
    """A channel's address: a path of the broker's ingress (Knative gives an
    InMemoryChannel a host of its own, `NAME-kn-channel.NS.svc.cluster.local`)."""
    return f"http://{INGRESS_HOST}/channels/{namespace}/{name}"
