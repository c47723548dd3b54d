"""SDS with a real Envoy: the agent's `SdsServer` on a Unix socket feeds a TLS listener
its certificate (`default`) and trust bundle (`ROOTCA`); a new certificate replaces the
old one under steady traffic, with no failed request and no dropped connection.

The listener here is a static one (mutual TLS, direct response), so that these tests
hold whatever the translators generate.
"""

from __future__ import annotations

import asyncio
import datetime
import http.client
import ssl
import threading
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from amimesh.agent import bootstrap as bs
from amimesh.agent import sds as sds_mod
from amimesh.agent.envoy import EnvoyProcess
from amimesh.identity import csr as csr_mod
from amimesh.identity import pem
from amimesh.identity.ca import CertificateAuthority
from amimesh.identity.issued import Issued
from amimesh.identity.spiffe import SpiffeId
from tests.e2e.harness import free_port

pytestmark = [pytest.mark.envoy]

SERVER_ID = SpiffeId("cluster.local", "default", "server")
CLIENT_ID = SpiffeId("cluster.local", "default", "client")
SDS_CONFIG = {
    "api_config_source": {
        "api_type": "GRPC",
        "transport_api_version": "V3",
        "grpc_services": [{"envoy_grpc": {"cluster_name": bs.SDS_CLUSTER}}],
    },
    "resource_api_version": "V3",
}
TLS_CONTEXT = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def tls_listener(port: int) -> dict[str, Any]:
    """Mutual TLS on `port` with the SDS secrets, answering 200 `ok`."""
    return {
        "name": "mtls",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": TLS_CONTEXT,
                        "require_client_certificate": True,
                        "common_tls_context": {
                            "tls_certificate_sds_secret_configs": [
                                {"name": sds_mod.DEFAULT, "sds_config": SDS_CONFIG}
                            ],
                            "validation_context_sds_secret_config": {
                                "name": sds_mod.ROOTCA,
                                "sds_config": SDS_CONFIG,
                            },
                        },
                    },
                },
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": HCM,
                            "stat_prefix": "mtls",
                            "route_config": {
                                "virtual_hosts": [
                                    {
                                        "name": "all",
                                        "domains": ["*"],
                                        "routes": [
                                            {
                                                "match": {"prefix": "/"},
                                                "direct_response": {
                                                    "status": 200,
                                                    "body": {"inline_string": "ok"},
                                                },
                                            }
                                        ],
                                    }
                                ]
                            },
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {"@type": ROUTER},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


@dataclass
class TlsEnvoy:
    """An Envoy with one mutual-TLS listener, its SDS server on its own loop."""

    tmp: Path
    ca: CertificateAuthority
    port: int = 0
    envoy: EnvoyProcess | None = None
    sds: sds_mod.SdsServer | None = None
    issued: list[Issued] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    def call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self, *, with_secret: bool = True) -> TlsEnvoy:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        socket, _ = sds_mod.socket_path(self.tmp / "sds.sock")
        self.sds = sds_mod.SdsServer(socket)
        self.call(self.sds.start())
        if with_secret:
            self.rotate()
        self.port = free_port()
        admin = free_port()
        cfg = bs.static_bootstrap(admin_port=admin)
        cfg["static_resources"]["clusters"].append(bs.sds_cluster(str(socket)))
        cfg["static_resources"]["listeners"].append(tls_listener(self.port))
        path = bs.write_bootstrap(self.tmp / "envoy.json", cfg)
        self.envoy = EnvoyProcess(path, admin, self.tmp / "envoy.log")
        self.envoy.start()
        return self

    def rotate(self, ttl: datetime.timedelta = datetime.timedelta(hours=1)) -> Issued:
        issued, key = self.ca.issue(SERVER_ID, ttl=ttl, now=now())
        secrets = sds_mod.Secrets(
            issued.certificate_chain, csr_mod.key_pem(key), issued.trust_bundle
        )
        sds = self.sds
        assert sds is not None

        async def update() -> None:
            sds.update(secrets)

        self.call(update())
        self.issued.append(issued)
        return issued

    def stop(self) -> None:
        if self.envoy is not None:
            self.envoy.stop()
        if self.sds is not None:
            self.call(self.sds.stop())
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(5)
            self._loop.close()


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority.self_signed(now=now())


@pytest.fixture
def client_ctx(tmp_path: Path, ca: CertificateAuthority) -> ssl.SSLContext:
    """A client with its own mesh certificate, trusting the CA (no host name check: the
    server's identity is its URI SAN, checked by the tests)."""
    issued, key = ca.issue(CLIENT_ID, ttl=datetime.timedelta(hours=1), now=now())
    (tmp_path / "client.pem").write_text(issued.certificate_chain)
    (tmp_path / "client.key").write_text(csr_mod.key_pem(key))
    ctx = ssl.create_default_context(cadata=ca.trust_bundle)
    ctx.check_hostname = False
    ctx.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    return ctx


@pytest.fixture
def tls_envoy(tmp_path: Path, ca: CertificateAuthority) -> Iterator[TlsEnvoy]:
    e = TlsEnvoy(tmp_path, ca)
    try:
        yield e
    finally:
        e.stop()


def get(port: int, ctx: ssl.SSLContext) -> tuple[int, str]:
    """One request on a new connection; (status, serial of the server's certificate)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True)
        assert der is not None
        return resp.status, pem.serial_hex(x509.load_der_x509_certificate(der))
    finally:
        conn.close()


def test_envoy_serves_the_certificate_it_got_by_sds(
    tls_envoy: TlsEnvoy, client_ctx: ssl.SSLContext, tmp_path: Path
) -> None:
    tls_envoy.start()
    assert tls_envoy.envoy is not None
    tls_envoy.envoy.wait_ready()
    status, serial = get(tls_envoy.port, client_ctx)
    assert (status, serial) == (200, tls_envoy.issued[0].serial)
    # Mutual: a client without a mesh certificate is refused.
    anonymous = ssl.create_default_context(cadata=tls_envoy.ca.trust_bundle)
    anonymous.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        get(tls_envoy.port, anonymous)


def test_a_listener_waits_for_its_secret(tls_envoy: TlsEnvoy, client_ctx: ssl.SSLContext) -> None:
    tls_envoy.start(with_secret=False)
    envoy = tls_envoy.envoy
    assert envoy is not None
    time.sleep(1.0)
    assert envoy.running()
    with pytest.raises(urllib.error.HTTPError) as answer:  # still waiting for `default`
        envoy.admin("/ready")
    answer.value.close()
    assert answer.value.code == 503
    tls_envoy.rotate()
    envoy.wait_ready(10)
    assert get(tls_envoy.port, client_ctx)[0] == 200


@pytest.mark.slow
def test_rotation_under_steady_traffic_drops_nothing(
    tls_envoy: TlsEnvoy, client_ctx: ssl.SSLContext
) -> None:
    tls_envoy.start()
    assert tls_envoy.envoy is not None
    tls_envoy.envoy.wait_ready()
    stop = threading.Event()
    served: list[str] = []
    failures: list[str] = []
    kept_alive = {"requests": 0, "reconnects": 0}

    def new_connections() -> None:
        while not stop.is_set():
            try:
                status, serial = get(tls_envoy.port, client_ctx)
                served.append(serial)
                if status != 200:
                    failures.append(f"status {status}")
            except Exception as e:
                failures.append(repr(e))

    def one_connection() -> None:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", tls_envoy.port, context=client_ctx, timeout=5
        )
        try:
            conn.connect()
            sock = conn.sock
            while not stop.is_set():
                try:
                    conn.request("GET", "/")
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        failures.append(f"keep-alive status {resp.status}")
                    kept_alive["requests"] += 1
                    if conn.sock is not sock:
                        kept_alive["reconnects"] += 1
                        sock = conn.sock
                except Exception as e:
                    failures.append(f"keep-alive: {e!r}")
                    return
                time.sleep(0.005)
        finally:
            conn.close()

    threads = [
        threading.Thread(target=f) for f in (new_connections, new_connections, one_connection)
    ]
    for t in threads:
        t.start()
    try:
        for _ in range(4):
            time.sleep(0.6)
            tls_envoy.rotate()
        time.sleep(0.6)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    issued = [i.serial for i in tls_envoy.issued]
    assert failures == []
    assert kept_alive["requests"] > 50 and kept_alive["reconnects"] == 0
    # Every certificate was served in turn, the last one to the end.
    assert set(issued) <= set(served)
    assert served[-1] == issued[-1]
    certs = tls_envoy.envoy.admin("/certs")
    assert int(issued[-1], 16) == int(_serials(certs)[0], 16)


def _serials(certs_json: str) -> list[str]:
    import json

    data = json.loads(certs_json)
    return [c["serial_number"] for e in data["certificates"] for c in e.get("cert_chain") or []]
