"""A translated Envoy resource, packed once and shared by every proxy that needs it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from google.protobuf import any_pb2
from google.protobuf.message import Message

from amimesh.translate.type_urls import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, TYPE_PREFIX

# The type URLs are named here too, for the translators and the xDS server.
__all__ = [
    "CLUSTER",
    "ENDPOINT",
    "LISTENER",
    "PUSH_ORDER",
    "ROUTE",
    "SECRET",
    "TYPE_PREFIX",
    "Built",
    "ProxyConfig",
]

# The order in which an update is pushed: a route never names a cluster Envoy lacks.
PUSH_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE)


@dataclass(frozen=True, eq=False)
class Built:
    """One named Envoy resource of one xDS type.

    `version` is a digest of the serialized message, so two proxies holding the same
    resource agree on its version, and an unchanged resource keeps its version.
    Serialization happens once per `Built`, however many proxies it is sent to.
    """

    type_url: str
    name: str
    message: Message
    # Encodings of it that other rooms make once and share (e.g. the xDS server's
    # wire form in a response), by their own key.
    encoded: dict[str, bytes] = field(default_factory=dict, repr=False)

    @cached_property
    def serialized(self) -> bytes:
        return self.message.SerializeToString(deterministic=True)

    @cached_property
    def version(self) -> str:
        return hashlib.blake2b(self.serialized, digest_size=8).hexdigest()

    @cached_property
    def set_digest(self) -> int:
        """Its share of the version of a set it is in (`pair_digest(name, version)`)."""
        return pair_digest(self.name, self.version)

    @cached_property
    def any(self) -> any_pb2.Any:
        return any_pb2.Any(type_url=self.type_url, value=self.serialized)


def pair_digest(name: str, version: str) -> int:
    """A 128-bit digest of one (name, version) pair; a set's version is their sum."""
    data = name.encode() + b"\0" + version.encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


# What the control plane holds for one proxy: type URL -> resource name -> resource.
ProxyConfig = dict[str, dict[str, Built]]
