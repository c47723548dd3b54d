"""Whether a proxy writes an access log, from Telemetry resources. Pure.

Three levels, the narrowest that sets `accessLogging` deciding, as in Istio:

- **workload**: a Telemetry in the proxy's namespace whose selector matches its labels;
- **namespace**: one without a selector (or with empty `matchLabels`) in its namespace;
- **mesh**: one without a selector in the root namespace, `istio-system`.

Within the deciding Telemetry, the `accessLogging` entries for the `envoy` provider
(those that name it, or name no provider) are read in order and the last one's
`disabled` wins. With no Telemetry deciding, access logging is on: Ami's default (Istio
turns it on with `meshConfig.accessLogFile`). Where several Telemetries apply at one
level, Ami takes the first by name, as for PeerAuthentication (`model.mtls`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from amimesh.model import selection
from amimesh.resources.istio_telemetry import ENVOY_PROVIDER, Telemetry

DEFAULT_ACCESS_LOGGING = True

# namespace -> that namespace's Telemetries that set accessLogging, by name.
TelemetryIndex = Mapping[str, tuple[Telemetry, ...]]


def index(telemetries: Iterable[Telemetry]) -> dict[str, tuple[Telemetry, ...]]:
    """The Telemetries that set `accessLogging`, by namespace, each in name order."""
    return selection.by_namespace(telemetries, lambda t: bool(t.spec.accessLogging))


@dataclass(frozen=True)
class AccessLogPolicy:
    """The Telemetry that decides a proxy's access logging; None: the default."""

    telemetry: Telemetry | None = None

    @property
    def enabled(self) -> bool:
        if self.telemetry is None:
            return DEFAULT_ACCESS_LOGGING
        enabled = DEFAULT_ACCESS_LOGGING
        for entry in self.telemetry.spec.accessLogging:
            providers = {p.name for p in entry.providers}
            if not providers or ENVOY_PROVIDER in providers:
                enabled = not entry.disabled
        return enabled


def access_log_policy(
    idx: TelemetryIndex, namespace: str, labels: Mapping[str, str]
) -> AccessLogPolicy:
    """The Telemetry that decides access logging for a proxy of `namespace` with `labels`."""
    return AccessLogPolicy(selection.levels(idx, namespace, labels).narrowest())
