"""ProxyConfig through `ami up`: the workload it selects runs its Envoy with the
ProxyConfig's `concurrency` (Envoy's own `/server_info` says so) and with its
`environmentVariables`; another workload keeps the default of 2 workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.meshes import from_yaml
from tests.e2e.test_runtime import Up

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

MESH = (
    "\n---\n".join(
        f"""
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  command: [python3, -m, http.server, "$(PORT)", --bind, 127.0.0.1]
  ports: [{{name: http, port: 8000}}]
  readinessProbe: {{httpGet: {{path: /}}}}
"""
        for name in ("tuned", "plain")
    )
    + """
---
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: tuned}
spec:
  selector: {matchLabels: {app: tuned}}
  concurrency: 3
  environmentVariables: {AMI_TEST_PROXY_VAR: from-proxy-config}
  image: {imageType: distroless}
"""
)


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Up]:
    with from_yaml(tmp_path, MESH) as up:
        yield up


def server_info(up: Up, instance: str) -> dict[str, object]:
    port = up.proxy(instance)["admin_port"]
    with httpx.Client(trust_env=False, timeout=5) as http:
        info: dict[str, object] = http.get(f"http://127.0.0.1:{port}/server_info").json()
    return info


def envoy_environ(up: Up, instance: str) -> dict[str, str]:
    bootstrap = str(up.state.instances / instance / "envoy.json")
    for p in up.family():
        try:
            if bootstrap in p.cmdline():
                return dict(p.environ())
        except psutil.Error:
            continue
    raise AssertionError(f"no Envoy runs {bootstrap}")


def test_proxy_config_concurrency_and_environment(mesh: Up) -> None:
    tuned = server_info(mesh, "tuned-0.default")
    assert tuned["command_line_options"]["concurrency"] == 3  # type: ignore[index]
    plain = server_info(mesh, "plain-0.default")
    assert plain["command_line_options"]["concurrency"] == 1  # type: ignore[index]
    assert envoy_environ(mesh, "tuned-0.default")["AMI_TEST_PROXY_VAR"] == "from-proxy-config"
    assert "AMI_TEST_PROXY_VAR" not in envoy_environ(mesh, "plain-0.default")
