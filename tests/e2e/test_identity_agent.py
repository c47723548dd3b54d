"""An instance with an identity: its certificate from the control plane's API (with
the node agent's token), served to its Envoy by SDS before Envoy starts; a token that
does not grant it fails the instance, clearly."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from amimesh.agent import config as ac
from amimesh.agent import events
from amimesh.identity import pem
from amimesh.identity.spiffe import SpiffeId
from tests.e2e.harness import Mesh
from tests.e2e.test_agent import AgentProc, config, start

pytestmark = [pytest.mark.envoy]

HELLO = SpiffeId("cluster.local", "default", "default")
APP = ("python", "-c", "import signal; signal.pause()")  # runs until stopped


@pytest.fixture
def api_mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp_path / "mesh", api_token="admin")
    m.workdir.mkdir()
    m.start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture
def agents() -> Iterator[list[AgentProc]]:
    started: list[AgentProc] = []
    yield started
    for a in started:
        a.close()


def with_identity(mesh: Mesh, tmp_path: Path, identity: SpiffeId = HELLO) -> ac.AgentConfig:
    cfg = config(mesh, tmp_path, APP, probe=False)
    spec = ac.IdentitySpec(
        spiffe_id=identity.uri,
        sds_socket=str(tmp_path / "sds.sock"),
        cert_file=str(tmp_path / "cert.pem"),
        bundle_file=str(tmp_path / "trust-bundle.pem"),
    )
    return replace(cfg, identity=spec)


def test_the_agent_gets_and_serves_its_certificate(
    api_mesh: Mesh, tmp_path: Path, agents: list[AgentProc]
) -> None:
    token = api_mesh.cp.identity.grant_node()
    ca = f"http://127.0.0.1:{api_mesh.cp.api_port}"
    agent = start(agents, with_identity(api_mesh, tmp_path), ca=ca, token=token)
    agent.until("envoy-ready")
    leaf = pem.load_certificates((tmp_path / "cert.pem").read_bytes())[0]
    assert pem.uri_sans(leaf) == [HELLO.uri]
    bundle = pem.load_certificates((tmp_path / "trust-bundle.pem").read_bytes())
    assert bundle == [api_mesh.ca.cert]
    assert stat.S_IMODE((tmp_path / "sds.sock").stat().st_mode) == 0o600
    envoy_json = (tmp_path / "envoy.json").read_text()
    assert '"sds-grpc"' in envoy_json and str(tmp_path / "sds.sock") in envoy_json
    assert "PRIVATE KEY" not in envoy_json
    assert api_mesh.cp.identity.issued_count == 1
    agent.terminate()
    agent.until("stopped")
    assert agent.wait(10) == 0
    assert not (tmp_path / "sds.sock").exists()


@pytest.mark.parametrize(
    ("grant", "reason"),
    [
        (None, "CA refused (401): unauthorized: unknown or revoked instance token"),
        (
            SpiffeId("cluster.local", "default", "admin"),
            "CA refused (403): this token grants spiffe://cluster.local/ns/default/sa/admin, "
            "and the CSR asks for spiffe://cluster.local/ns/default/sa/default: refused",
        ),
    ],
)
def test_a_refused_certificate_fails_the_instance_at_once(
    api_mesh: Mesh,
    tmp_path: Path,
    agents: list[AgentProc],
    grant: SpiffeId | None,
    reason: str,
) -> None:
    token = api_mesh.cp.identity.grant(grant) if grant is not None else "wrong"
    ca = f"http://127.0.0.1:{api_mesh.cp.api_port}"
    agent = start(agents, with_identity(api_mesh, tmp_path), ca=ca, token=token)
    failed = agent.until("failed")
    assert failed["reason"] == f"no certificate for hello-0.default: {reason}"
    assert agent.until("stopped") == events.stopped(125)
    assert agent.wait(10) == 125
    assert not (tmp_path / "cert.pem").exists()
