"""Telemetry checks beyond the schema: selector labels are Kubernetes label keys and
values, without wildcards (as PeerAuthentication's)."""

from __future__ import annotations

from collections.abc import Iterator

from amimesh.resources import istio_telemetry as tel
from amimesh.resources.checks_security import selector_issues
from amimesh.resources.errors import Issue


def check_telemetry(t: tel.Telemetry) -> Iterator[Issue]:
    if t.spec.selector is not None:
        yield from selector_issues(t.spec.selector, ("spec", "selector", "matchLabels"))
