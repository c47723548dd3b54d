"""What the runtime gives each instance for its identity, and `ami identity`'s view."""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import stat
from pathlib import Path

import pytest

from amimesh.agent import certs
from amimesh.agent import config as ac
from amimesh.cli import cmd_identity, cmd_up
from amimesh.identity.ca import CertificateAuthority
from amimesh.identity.spiffe import SpiffeId
from amimesh.model.proxy import GatewayPort
from amimesh.resources import Workload, parse_documents
from amimesh.runtime import identity, plan
from amimesh.runtime.state import StateDir

WORKLOAD = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  command: [python, web.py]
  serviceAccount: web-sa
  ports: [{name: http, port: 8080}]
"""
DOMAIN = "example.org"


def web(tmp_path: Path, trust_domain: str | None = DOMAIN) -> plan.InstanceSpec:
    (w,) = [r for r in parse_documents(WORKLOAD, "w.yaml").resources if isinstance(r, Workload)]
    ports = itertools.count(41000)
    return plan.workload_instance(
        w,
        0,
        services=[],
        allocate=lambda: next(ports),
        state=StateDir(tmp_path),
        xds_port=40000,
        config_dir=tmp_path,
        trust_domain=trust_domain,
    )


def test_an_instance_gets_its_identity(tmp_path: Path) -> None:
    spec = web(tmp_path)
    ident = spec.agent.identity
    assert ident is not None
    assert ident.spiffe_id == "spiffe://example.org/ns/shop/sa/web-sa"
    home = tmp_path / "instances" / "web-0.shop"
    assert ident.sds_socket == str(home / "sds.sock")
    assert ident.cert_file == str(home / "cert.pem")
    assert ident.bundle_file == str(home / "trust-bundle.pem")
    assert web(tmp_path, None).agent.identity is None


def test_the_gateway_is_istios_ingress_gateway_account(tmp_path: Path) -> None:
    spec = plan.gateway_instance(
        [GatewayPort(8080, 8080)],
        allocate=lambda: 41000,
        state=StateDir(tmp_path),
        xds_port=1,
    )
    assert spec.agent.identity is not None
    assert spec.agent.identity.spiffe_id == (
        "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    )


def test_the_instance_record_is_private_and_holds_no_secret(tmp_path: Path) -> None:
    spec = web(tmp_path)
    path = ac.write(tmp_path / "agent.json", spec.agent)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ac.read(path) == spec.agent
    assert set(json.loads(path.read_text())["identity"]) == {
        "spiffe_id",
        "sds_socket",
        "cert_file",
        "bundle_file",
    }


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400.0), ("90m", 5400.0), ("30s", 30.0), ("4", 4.0)]
)
def test_cert_ttl_durations(text: str, seconds: float) -> None:
    assert cmd_up.duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1h", "soon", "h"])
def test_bad_cert_ttls(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cmd_up.duration(text)


# --- `ami identity` --------------------------------------------------------------------


def _mesh_with_cert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    """A state dir whose web-0 agent wrote its certificate; returns (root, serial)."""
    root = tmp_path / "state"
    st = StateDir(root / "shop-1").create()
    (st.info_file).write_text(json.dumps({"name": "shop-1"}))
    spec = web(st.path)
    spec.config_path.parent.mkdir(parents=True)
    ac.write(spec.config_path, spec.agent)
    now = datetime.datetime.now(datetime.UTC)
    ca = CertificateAuthority.self_signed("example.org", now=now)
    issued, _ = ca.issue(
        SpiffeId("example.org", "shop", "web-sa"), ttl=datetime.timedelta(hours=2), now=now
    )
    assert spec.agent.identity is not None
    certs.write_public(issued, spec.agent.identity.cert_file, spec.agent.identity.bundle_file)
    capsys.readouterr()
    return root, issued.serial


def run_identity(root: Path, *argv: str) -> int:
    p = argparse.ArgumentParser()
    cmd_identity.add_parser(p.add_subparsers())
    args = p.parse_args(["identity", *argv, "--mesh", "shop-1", "--state-dir", str(root)])
    code: int = args.run(args)
    return code


def test_ami_identity_shows_the_current_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, serial = _mesh_with_cert(tmp_path, capsys)
    assert run_identity(root, "web") == 0
    out = capsys.readouterr().out
    assert "web-0.shop" in out
    assert "spiffe://example.org/ns/shop/sa/web-sa" in out
    assert f"serial      {serial}" in out
    assert "(in 1h59m" in out
    assert "trust bundle (1 root)" in out and "CN=Ami root CA" in out and "SHA256 " in out
    assert run_identity(root, "web-0.shop", "-o", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["serial"] == serial and data["spiffe_id"].endswith("/sa/web-sa")
    assert data["trust_bundle"][0]["is_ca"] is True


def test_ami_identity_of_unknown_or_certless_instances(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = _mesh_with_cert(tmp_path, capsys)
    assert run_identity(root, "nobody") == 1
    assert "no workload or instance 'nobody'" in capsys.readouterr().err
    os.unlink(root / "shop-1" / "instances" / "web-0.shop" / "cert.pem")
    assert run_identity(root, "web") == 1
    assert "no certificate yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (41, "in 41s"),
        (-5, "expired 5s ago"),
        (3700, "in 1h01m"),
        (600, "in 10m00s"),
        (90000, "in 25h00m"),
    ],
)
def test_remaining(seconds: int, text: str) -> None:
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    assert identity.remaining(now + datetime.timedelta(seconds=seconds), now) == text
