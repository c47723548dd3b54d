"""Knative's channels and flows: Channel, InMemoryChannel, Subscription
(messaging.knative.dev/v1), Sequence and Parallel (flows.knative.dev/v1). Read and
validated here; `eventing.expand` runs them on the broker's JetStream streams.

Fields as in knative/eventing `pkg/apis/messaging/v1` and `pkg/apis/flows/v1`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from amimesh.resources.fields import NotSupported, Strict
from amimesh.resources.knative_eventing import DeliverySpec, Destination, KReference
from amimesh.resources.meta import Resource

MESSAGING_GROUP = "messaging.knative.dev"
FLOWS_GROUP = "flows.knative.dev"
_STORED = "every channel is a JetStream stream, durable whatever the template says"


class ChannelTemplateSpec(Strict):
    apiVersion: str = Field(min_length=1)
    kind: str = Field(min_length=1, description=_STORED)
    spec: dict[str, Any] = Field(default_factory=dict, description="accepted and kept")


class ChannelableSpec(Strict):
    delivery: DeliverySpec | None = Field(
        default=None, description="the default of its subscriptions without a delivery"
    )
    subscribers: NotSupported = None


class ChannelSpec(ChannelableSpec):
    channelTemplate: ChannelTemplateSpec | None = Field(default=None, description=_STORED)


class SubscriptionSpec(Strict):
    channel: KReference = Field(description="a Channel or InMemoryChannel of the namespace")
    subscriber: Destination | None = None
    reply: Destination | None = Field(
        default=None, description="where the subscriber's reply events go (else dropped)"
    )
    delivery: DeliverySpec | None = None


class SequenceStep(Destination):
    delivery: DeliverySpec | None = None


class SequenceSpec(Strict):
    steps: list[SequenceStep] = Field(min_length=1)
    channelTemplate: ChannelTemplateSpec | None = Field(default=None, description=_STORED)
    reply: Destination | None = Field(default=None, description="gets the last step's reply")


class ParallelBranch(Strict):
    filter: Destination | None = Field(
        default=None, description="passes the event on by replying with it; no filter: all pass"
    )
    subscriber: Destination
    reply: Destination | None = Field(default=None, description="default: the Parallel's")
    delivery: DeliverySpec | None = None


class ParallelSpec(Strict):
    branches: list[ParallelBranch] = Field(min_length=1)
    channelTemplate: ChannelTemplateSpec | None = Field(default=None, description=_STORED)
    reply: Destination | None = None


class InMemoryChannel(Resource):
    KIND: ClassVar[str] = "InMemoryChannel"
    API_GROUP: ClassVar[str] = MESSAGING_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: ChannelableSpec = Field(default_factory=ChannelableSpec)


class Channel(Resource):
    KIND: ClassVar[str] = "Channel"
    API_GROUP: ClassVar[str] = MESSAGING_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: ChannelSpec = Field(default_factory=ChannelSpec)


class Subscription(Resource):
    KIND: ClassVar[str] = "Subscription"
    API_GROUP: ClassVar[str] = MESSAGING_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: SubscriptionSpec


class Sequence(Resource):
    KIND: ClassVar[str] = "Sequence"
    API_GROUP: ClassVar[str] = FLOWS_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: SequenceSpec


class Parallel(Resource):
    KIND: ClassVar[str] = "Parallel"
    API_GROUP: ClassVar[str] = FLOWS_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    spec: ParallelSpec


class NatsJetStreamChannelSpec(ChannelableSpec):
    stream: dict[str, Any] = Field(
        default_factory=dict, description="accepted and kept: Ami makes the stream itself"
    )
    consumerConfigTemplate: dict[str, Any] = Field(
        default_factory=dict, description="accepted and kept: Ami makes the consumers itself"
    )
    deploymentSpecTemplate: dict[str, Any] = Field(
        default_factory=dict, description="accepted and ignored: Ami runs no Deployment"
    )


class NatsJetStreamChannel(Resource):
    """eventing-natss's channel: taken as any channel of the mesh (a JetStream stream)."""

    KIND: ClassVar[str] = "NatsJetStreamChannel"
    API_GROUP: ClassVar[str] = MESSAGING_GROUP
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1alpha1",)
    spec: NatsJetStreamChannelSpec = Field(default_factory=NatsJetStreamChannelSpec)


AnyChannel = Channel | InMemoryChannel | NatsJetStreamChannel
CHANNELS: tuple[type[Resource], ...] = (Channel, InMemoryChannel, NatsJetStreamChannel)
