"""Workload identity end to end: `ami up` with short-lived certificates.

The mesh (gateway → web → api ×2) runs with `--cert-ttl 4s`: the node agent makes a key
per identity, gets its certificate from the control plane's CA with the node's token,
serves it to each Envoy of that identity by SDS, and renews it about every two
seconds. Steady traffic crosses every sidecar meanwhile, and not one request may fail.
"""

from __future__ import annotations

import argparse
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from amimesh.agent import config as ac
from amimesh.cli import cmd_identity
from amimesh.identity import csr as csr_mod
from amimesh.identity import pem, store
from amimesh.identity.spiffe import SpiffeId
from tests.e2e.harness import free_port
from tests.e2e.test_runtime import Up, kill_everything, start_up, until, write_mesh

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

TTL_S = 4.0


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    base = tmp_path_factory.mktemp("identity")
    up = start_up(
        write_mesh(base / "shop"),
        base / "state",
        "--gateway-port",
        str(free_port()),
        "--cert-ttl",
        f"{TTL_S:g}s",
    )
    family: list[psutil.Process] = []
    try:
        until(up.settled, "every instance ready")
        family = up.family()
        yield up
    finally:
        kill_everything(up, family)


def agent_configs(up: Up) -> dict[str, ac.AgentConfig]:
    return {p.parent.name: ac.read(p) for p in up.state.instances.glob("*/agent.json")}


def leaf_serial(path: Path) -> str:
    return pem.serial_hex(pem.load_certificates(path.read_bytes())[0])


def envoy_serials(admin_port: int) -> set[str]:
    """Serials of the workload certificates this Envoy uses now (admin /certs)."""
    with httpx.Client(trust_env=False, timeout=2) as c:
        data = c.get(f"http://127.0.0.1:{admin_port}/certs").json()
    return {
        str(cert["serial_number"]).lower().lstrip("0")
        for entry in data.get("certificates", [])
        for cert in entry.get("cert_chain") or []
    }


def test_the_ca_lives_in_the_state_dir_with_a_private_key(mesh: Up) -> None:
    ca_dir = mesh.state.ca
    assert stat.S_IMODE((ca_dir / store.CA_KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE(ca_dir.stat().st_mode) == 0o700
    root = pem.load_certificates((ca_dir / store.ROOT_CERT).read_bytes())
    # Every running instance (a job may end before its certificate is even needed).
    running = [r["id"] for r in mesh.instances().values() if r["ready"]]
    assert len(running) == 4
    for iid in running:
        home = mesh.state.instances / iid
        bundle = pem.load_certificates((home / "trust-bundle.pem").read_bytes())
        assert bundle == root


def test_every_instance_has_its_own_identity(mesh: Up) -> None:
    configs = agent_configs(mesh)
    want = {
        "api-0.default": "spiffe://cluster.local/ns/default/sa/default",
        "web-0.default": "spiffe://cluster.local/ns/default/sa/default",
        "istio-ingressgateway-0.istio-system": (
            "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
        ),
    }
    for iid, spiffe_id in want.items():
        cfg = configs[iid]
        assert cfg.identity is not None and cfg.identity.spiffe_id == spiffe_id
        home = mesh.state.instances / iid
        chain = (home / "cert.pem").read_text()
        assert pem.uri_sans(pem.load_certificates(chain)[0]) == [spiffe_id]
        assert "PRIVATE KEY" not in chain
        assert stat.S_IMODE((home / "agent.json").stat().st_mode) == 0o600
    # No agent wrote a key anywhere in the state dir: the CA's own is the only one.
    keys = [
        p
        for p in mesh.state.path.rglob("*")
        if p.is_file() and not p.name.endswith(".log") and b"PRIVATE KEY" in p.read_bytes()
    ]
    assert keys == [mesh.state.ca / store.CA_KEY]


def test_the_node_token_gets_workload_identities_of_its_trust_domain_only(mesh: Up) -> None:
    node = (mesh.state.path / "node-token").read_text().strip()
    assert stat.S_IMODE((mesh.state.path / "node-token").stat().st_mode) == 0o600
    url = mesh.info().api + "/api/v1/certificates"
    gateway = SpiffeId("cluster.local", "istio-system", "istio-ingressgateway-service-account")
    elsewhere = SpiffeId("example.org", "default", "default")
    with httpx.Client(trust_env=False, timeout=5) as c:

        def sign(identity: SpiffeId, token: str) -> httpx.Response:
            csr = csr_mod.make_csr(csr_mod.new_key(), identity)
            return c.post(url, json={"csr": csr}, headers={"Authorization": f"Bearer {token}"})

        resp = sign(gateway, node)
        assert resp.status_code == 200 and resp.json()["spiffe_id"] == gateway.uri
        resp = sign(elsewhere, node)
        assert resp.status_code == 403 and "example.org" in resp.json()["error"]
        assert sign(gateway, mesh.state.read_token()).status_code == 403  # the API token
        assert sign(gateway, "not-a-token").status_code == 401
        resp = c.post(url, json={"csr": "junk"}, headers={"Authorization": f"Bearer {node}"})
        assert resp.status_code == 400 and "csr:" in resp.json()["error"]


def test_ami_identity_prints_the_current_certificate(
    mesh: Up, capsys: pytest.CaptureFixture[str]
) -> None:
    p = argparse.ArgumentParser()
    cmd_identity.add_parser(p.add_subparsers())
    argv = ["identity", "web", "--mesh", str(mesh.config_dir), "--state-dir", str(mesh.state_root)]
    args = p.parse_args(argv)
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "spiffe://cluster.local/ns/default/sa/default" in out
    assert "serial" in out and "not after" in out and "trust bundle (1 root)" in out


def test_certificates_rotate_under_steady_traffic_with_no_failure(mesh: Up) -> None:
    gateway = mesh.info().gateway_urls[0]
    running = {r["id"] for r in mesh.instances().values() if r["ready"]}
    configs = {iid: c for iid, c in agent_configs(mesh).items() if iid in running}
    assert len(configs) == 4  # web, api ×2, the gateway (the job is done)
    stop = threading.Event()
    results: list[int | str] = []

    def traffic() -> None:
        with httpx.Client(trust_env=False, timeout=5) as c:  # keep-alive to the gateway
            while not stop.is_set():
                try:
                    resp = c.get(gateway)
                    results.append(resp.status_code)
                    assert resp.text.startswith("web -> api")
                except Exception as e:
                    results.append(repr(e))
                time.sleep(0.01)

    files = {iid: mesh.state.instances / iid / "cert.pem" for iid in configs}
    # What an Envoy held before (a draining context may show it a while longer).
    before = {iid: envoy_serials(c.proxy.admin_port) for iid, c in configs.items()}
    file_serials: dict[str, set[str]] = {iid: {leaf_serial(f)} for iid, f in files.items()}
    served: dict[str, set[str]] = {iid: set() for iid in configs}
    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 3.5 * TTL_S
        while time.monotonic() < deadline:
            for iid, f in files.items():
                # Envoy first: a renewal reaches it by SDS just before its file is
                # written, so the file read after it has caught up.
                served[iid] |= envoy_serials(configs[iid].proxy.admin_port)
                file_serials[iid].add(leaf_serial(f))
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    for iid, f in files.items():  # a renewal at the very end
        file_serials[iid].add(leaf_serial(f))
    failures = [r for r in results if r != 200]
    assert len(results) > 100
    assert failures == []
    for iid, serials in file_serials.items():
        assert len(serials) >= 4, (iid, serials)  # renewed at ~half of a 4 s life
    # What each Envoy presents (mTLS between the sidecars and from the gateway)
    # follows the renewals.
    for iid, seen in served.items():
        assert len(seen) >= 3, (iid, seen)
        assert seen - before[iid] <= file_serials[iid], (iid, seen, file_serials[iid])
    status = mesh.instances()
    assert all(r["restarts"] == 0 for r in status.values() if r["state"] != "completed")


def test_a_restart_keeps_the_root(tmp_path: Path) -> None:
    config = write_mesh(tmp_path / "again")
    root = tmp_path / "state"

    def run_once(n: int) -> bytes:
        up = start_up(config, root, "--gateway-port", str(free_port()))
        family: list[psutil.Process] = []
        try:
            try:
                until(up.settled, "every instance ready")
            except AssertionError as e:
                raise AssertionError(f"run {n}: {e}\n{up.instances()}\n{up.text()}") from None
            family = up.family()
            cert = (up.state.ca / store.CA_CERT).read_bytes()
            chain = (up.state.instances / "web-0.default" / "cert.pem").read_bytes()
            pem.load_certificates(chain)[0].verify_directly_issued_by(
                pem.load_certificates(cert)[0]
            )
            return cert
        finally:
            up.proc.send_signal(2)
            try:
                up.proc.wait(30)
            finally:
                kill_everything(up, family)
                up.output.rename(up.output.with_suffix(f".{n}.out"))

    assert run_once(1) == run_once(2)
