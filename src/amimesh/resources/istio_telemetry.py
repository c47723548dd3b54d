"""Istio's `Telemetry` (telemetry.istio.io v1alpha1, v1): access logging, for now.

A Telemetry with a selector applies to the workloads of its namespace whose labels
match; without one, to its namespace; in the root namespace (`istio-system`), to the
whole mesh. The narrowest one that sets `accessLogging` decides (`model.telemetry`).
Without any, every proxy writes an access log (Ami's default; Istio's is off).

Only the `envoy` provider (Envoy's file access log, as the runtime sets it up) is
supported; other providers (`otel`, ...) and `filter`, `match`, `tracing` and
`metrics` are errors that say so, never silently ignored.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from amimesh.resources.fields import NOT_SUPPORTED_MESSAGE, NotSupported, Strict, show
from amimesh.resources.istio_security import WorkloadSelector
from amimesh.resources.meta import Resource

TELEMETRY_VERSIONS = ("v1alpha1", "v1")
ENVOY_PROVIDER = "envoy"


class ProviderRef(Strict):
    name: str = Field(description='"envoy" (Envoy\'s file access log); no other yet')

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if not value:
            raise ValueError('must name a provider, such as "envoy"')
        if value != ENVOY_PROVIDER:
            raise ValueError(
                f"{show(value)} {NOT_SUPPORTED_MESSAGE}: the only access log provider is "
                f'"{ENVOY_PROVIDER}" (a file per proxy)'
            )
        return value


class AccessLogging(Strict):
    providers: list[ProviderRef] = Field(
        default_factory=list, description='empty: the default provider, "envoy"'
    )
    disabled: bool | None = Field(default=None, description="true: no access log")
    filter: NotSupported = None
    match: NotSupported = None


class TelemetrySpec(Strict):
    selector: WorkloadSelector | None = None
    accessLogging: list[AccessLogging] = Field(default_factory=list)
    targetRef: NotSupported = None
    targetRefs: NotSupported = None
    tracing: NotSupported = None
    metrics: NotSupported = None


class Telemetry(Resource):
    KIND: ClassVar[str] = "Telemetry"
    API_GROUP: ClassVar[str] = "telemetry.istio.io"
    API_VERSIONS: ClassVar[tuple[str, ...]] = TELEMETRY_VERSIONS
    spec: TelemetrySpec = Field(default_factory=TelemetrySpec)
