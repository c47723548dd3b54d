"""What the control plane keeps as plain strings so that a config without a kind never
loads that kind's module: the same names as the kinds' own."""

from __future__ import annotations

import subprocess
import sys


def test_the_controller_names_contours_kind_as_its_resource_does() -> None:
    # The controller keeps Contour's group and kind as strings (so that a config
    # without HTTPProxies never loads Contour's kinds): they must be the kind's own.
    from amimesh.controlplane import gatewayapi as ga_controller
    from amimesh.controlplane import httpproxy as controller
    from amimesh.resources import contour, gateway_api, kube

    assert controller.CONTOUR_GROUP == contour.HTTPProxy.API_GROUP
    assert controller.HTTPPROXY_KIND == contour.HTTPProxy.qualified_kind()
    assert ga_controller.GATEWAY_API_GROUP == gateway_api.GROUP
    assert contour.UPSTREAM_PROTOCOL == kube.UPSTREAM_PROTOCOL


def test_the_control_plane_serves_its_api_without_loading_unused_kinds() -> None:
    # In a fresh interpreter: what the control plane imports before its API answers.
    code = (
        "import sys, amimesh.cli.controlplane, amimesh.controlplane.api\n"
        "print(sorted(m for m in sys.modules if m in ("
        "'amimesh.resources.contour', 'amimesh.resources.gateway_api', "
        "'amimesh.model.analyze', 'opentelemetry.proto.trace.v1.trace_pb2')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
