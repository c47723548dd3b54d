"""Findings for Sidecar, ProxyConfig and EnvoyFilter: fields accepted but ignored on one
machine (AMI0601), and Sidecar ingress ports the selected workloads do not have."""

from __future__ import annotations

from collections.abc import Iterator

from amimesh.model.analyze_findings import PROXY_FIELD_IGNORED, Finding
from amimesh.model.snapshot import Snapshot
from amimesh.resources import istio_envoyfilter as ef
from amimesh.resources import istio_sidecar as sc
from amimesh.resources.meta import Resource

_NOTHING = "nothing to do; the field matters only on Kubernetes"


def _finding(r: Resource, field: str, message: str, hint: str = _NOTHING) -> Finding:
    return Finding(
        code=PROXY_FIELD_IGNORED.code,
        severity=PROXY_FIELD_IGNORED.severity,
        kind=r.kind,
        namespace=r.namespace,
        name=r.name,
        field=field,
        message=message,
        hint=hint,
    )


def sidecar_findings(snap: Snapshot) -> Iterator[Finding]:
    for r in snap.resources.values():
        if isinstance(r, sc.Sidecar):
            yield from _sidecar(r)
        elif isinstance(r, sc.ProxyConfig) and r.spec.image is not None:
            yield _finding(
                r,
                "spec.image",
                "image is ignored: every proxy runs the Envoy build Ami ships",
            )
        elif isinstance(r, ef.EnvoyFilter):
            yield from _envoy_filter(r)


def _sidecar(r: sc.Sidecar) -> Iterator[Finding]:
    listeners: list[tuple[str, int, sc.IstioEgressListener | sc.IstioIngressListener]] = [
        *(("egress", i, e) for i, e in enumerate(r.spec.egress)),
        *(("ingress", i, e) for i, e in enumerate(r.spec.ingress)),
    ]
    for kind, i, listener in listeners:
        if listener.bind is not None:
            yield _finding(
                r,
                f"spec.{kind}[{i}].bind",
                "bind is ignored: a proxy's listeners bind its own loopback address",
            )
        if listener.captureMode is not None:
            yield _finding(
                r,
                f"spec.{kind}[{i}].captureMode",
                "captureMode is ignored: apps reach their proxy explicitly (HTTP_PROXY), "
                "nothing is captured",
            )
    for i, ingress in enumerate(r.spec.ingress):
        if ingress.defaultEndpoint is None:
            yield _finding(
                r,
                f"spec.ingress[{i}]",
                "an ingress without defaultEndpoint changes nothing: the inbound listener "
                "of each workload port already reaches the app",
                "add defaultEndpoint: 127.0.0.1:PORT to send the port elsewhere",
            )


def _envoy_filter(r: ef.EnvoyFilter) -> Iterator[Finding]:
    for i, p in enumerate(r.spec.configPatches):
        if p.listener is not None:
            yield _finding(
                r,
                f"spec.configPatches[{i}].listener",
                "listener here is not part of Istio's schema and is dropped (Kubernetes "
                "prunes it too): the patch matches every listener of its applyTo",
                "move it under match: to narrow the patch",
            )
        if p.match is not None and p.match.proxy is not None and p.match.proxy.proxyVersion:
            yield _finding(
                r,
                f"spec.configPatches[{i}].match.proxy.proxyVersion",
                "proxyVersion is ignored: every proxy runs the Envoy build Ami ships",
            )
