"""Renewal: when (pure), and the agent's rotator with a fake CA and with the real API."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest

from amimesh.agent import certs
from amimesh.agent.sds import Secrets
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.identity import csr as csr_mod
from amimesh.identity import pem, rotation
from amimesh.identity.ca import CertificateAuthority
from amimesh.identity.issued import Issued
from amimesh.identity.spiffe import SpiffeId

WEB = SpiffeId("cluster.local", "default", "web")


def test_renewal_is_at_half_life_minus_jitter() -> None:
    assert rotation.renew_after(100.0, 0.0) == 50.0
    assert rotation.renew_after(100.0, 0.999) == pytest.approx(40.01)
    assert rotation.renew_after(0.0, 0.5) == 0.0
    assert rotation.renew_after(-5.0, 0.5) == 0.0


def test_retries_back_off_but_not_past_the_expiry() -> None:
    delays = [rotation.retry_after(n, 3600.0) for n in range(1, 12)]
    assert delays[0] == rotation.RETRY_MIN_S
    assert delays == sorted(delays) and delays[-1] == rotation.RETRY_MAX_S
    assert rotation.retry_after(10, 2.0) == 0.5  # a quarter of what is left
    assert rotation.retry_after(10, 0.0) == rotation.RETRY_MAX_S  # expired: keep trying


class FakeCa:
    """Signs with a real CA; can be told to fail."""

    def __init__(self, ttl: datetime.timedelta) -> None:
        self.ca = CertificateAuthority.self_signed(now=datetime.datetime.now(datetime.UTC))
        self.ttl = ttl
        self.fail: Exception | None = None
        self.csrs: list[str] = []

    async def sign(self, csr_pem: str) -> Issued:
        self.csrs.append(csr_pem)
        if self.fail is not None:
            raise self.fail
        request = csr_mod.read_csr(csr_pem)
        identity = csr_mod.requested_identity(request)
        now = datetime.datetime.now(datetime.UTC)
        return self.ca.sign(request, identity, ttl=self.ttl, now=now)


class Received:
    """What the rotator handed on, and an event once `n` certificates came."""

    def __init__(self, n: int) -> None:
        self.items: list[tuple[Secrets, Issued]] = []
        self.n = n
        self.enough = asyncio.Event()

    def __call__(self, secrets: Secrets, issued: Issued) -> None:
        self.items.append((secrets, issued))
        if len(self.items) >= self.n:
            self.enough.set()


async def test_the_rotator_renews_with_a_new_key_each_time() -> None:
    ca = FakeCa(datetime.timedelta(seconds=0.4))
    received = Received(4)
    got = received.items
    rotator = certs.Rotator(WEB, ca.sign, on_cert=received, rand=lambda: 0)
    await rotator.renew()
    task = asyncio.create_task(rotator.run())
    try:
        await asyncio.wait_for(received.enough.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    serials = [i.serial for _, i in got]
    keys = [s.private_key for s, _ in got]
    assert len(set(serials)) == len(serials) and len(set(keys)) == len(keys)
    for secrets, issued in got:
        leaf = pem.load_certificates(secrets.certificate_chain)[0]
        assert pem.serial_hex(leaf) == issued.serial and issued.spiffe_id == WEB.uri


async def test_a_failed_renewal_is_retried_and_the_old_cert_serves_on() -> None:
    ca = FakeCa(datetime.timedelta(seconds=1))
    received = Received(2)
    got = received.items
    rotator = certs.Rotator(WEB, ca.sign, on_cert=received, rand=lambda: 0)
    await rotator.renew()
    ca.fail = certs.CaUnavailable("down")
    task = asyncio.create_task(rotator.run())
    try:
        await asyncio.sleep(0.9)
        assert len(got) == 1 and len(ca.csrs) >= 3  # renewal at 0.5 s, then retries
        ca.fail = None
        await asyncio.wait_for(received.enough.wait(), 3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_first_certificate_waits_for_the_ca_but_not_for_a_refusal() -> None:
    ca = FakeCa(datetime.timedelta(hours=1))
    rotator = certs.Rotator(WEB, ca.sign, on_cert=lambda s, i: None)
    ca.fail = certs.CaRefused(403, "no")
    with pytest.raises(certs.CaRefused):
        await certs.first_certificate(rotator, timeout_s=5)
    assert len(ca.csrs) == 1
    ca.fail = certs.CaUnavailable("down")
    with pytest.raises(certs.CaUnavailable):
        await certs.first_certificate(rotator, timeout_s=0.5)
    assert len(ca.csrs) > 2


async def test_the_ca_client_through_the_real_api(tmp_path: Path) -> None:
    cp = ControlPlane(
        ControlPlaneConfig(api_port=0, api_token="admin", ca_dir=tmp_path / "ca", cert_ttl_s=60)
    )
    await cp.start()
    try:
        url = f"http://127.0.0.1:{cp.api_port}"
        token = cp.identity.grant(WEB)
        issued = await certs.CaClient(url, token).sign(csr_mod.make_csr(csr_mod.new_key(), WEB))
        assert issued.spiffe_id == WEB.uri
        other = SpiffeId("cluster.local", "default", "db")
        with pytest.raises(certs.CaRefused, match=r"\(403\).*grants .*/sa/web.*asks for .*/sa/db"):
            await certs.CaClient(url, token).sign(csr_mod.make_csr(csr_mod.new_key(), other))
        with pytest.raises(certs.CaRefused, match=r"\(401\)"):
            await certs.CaClient(url, "nope").sign(csr_mod.make_csr(csr_mod.new_key(), WEB))
        with pytest.raises(certs.CaRefused, match=r"\(400\).*csr"):
            await certs.CaClient(url, token).sign("not a csr")
    finally:
        await cp.stop()
    with pytest.raises(certs.CaUnavailable):
        await certs.CaClient(url, token, timeout_s=1).sign("x")


def test_public_files_hold_no_key(tmp_path: Path) -> None:
    ca = CertificateAuthority.self_signed(now=datetime.datetime.now(datetime.UTC))
    issued, _ = ca.issue(
        WEB, ttl=datetime.timedelta(hours=1), now=datetime.datetime.now(datetime.UTC)
    )
    certs.write_public(issued, str(tmp_path / "cert.pem"), str(tmp_path / "bundle.pem"))
    assert (tmp_path / "cert.pem").read_text() == issued.certificate_chain
    assert (tmp_path / "bundle.pem").read_text() == issued.trust_bundle
    assert (
        "PRIVATE" not in (tmp_path / "cert.pem").read_text() + (tmp_path / "bundle.pem").read_text()
    )
