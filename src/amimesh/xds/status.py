"""What the control plane reports about each connected proxy's sync state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["sotw", "delta"]


@dataclass(frozen=True)
class Nack:
    """One response a proxy rejected.

    `version` is what the server sent and the proxy refused; `resource_names` are the
    names that response carried (added, changed or removed), the candidates for the
    fault; `message` is Envoy's own error text. `at` is wall-clock seconds.
    """

    type_url: str
    nonce: str
    version: str
    message: str
    code: int
    resource_names: tuple[str, ...]
    at: float


@dataclass(frozen=True)
class TypeSyncStatus:
    """One xDS type on one stream.

    `acked_version` is the version the proxy last accepted; `rejected` is true when the
    last answered response of this type was NACKed (the proxy is running an older
    config); `last_nack` stays after a later ACK, as history.
    """

    type_url: str
    wildcard: bool
    subscribed: tuple[str, ...]
    sent_version: str
    sent_nonce: str
    acked_version: str
    awaiting_ack: bool
    rejected: bool
    last_nack: Nack | None
    responses_sent: int
    resources_sent: int


@dataclass(frozen=True)
class ProxySyncStatus:
    """One ADS stream of one proxy.

    `synced` means the proxy has accepted everything the control plane generated for
    the resources it subscribes to, and nothing is waiting to be sent.
    `connected_since` is wall-clock seconds.
    """

    proxy_id: str
    stream_id: int
    mode: Mode
    connected_since: float
    synced: bool
    types: tuple[TypeSyncStatus, ...]

    def type(self, type_url: str) -> TypeSyncStatus | None:
        """The status of one type, or None if the proxy never asked for it."""
        for status in self.types:
            if status.type_url == type_url:
                return status
        return None
