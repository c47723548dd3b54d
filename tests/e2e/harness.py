"""A real mesh for tests: the control plane in-process, real Envoy sidecars, test backends.

    mesh.apply(yaml_text)                       # resources into the store
    v1 = mesh.workload("reviews-v1", {"app": "reviews", "version": "v1"}, port=9080)
    client = mesh.client()                      # a sidecar with the outbound listener
    mesh.wait_synced()
    httpx.get("http://reviews:9080/", proxy=client.proxy_url)

    gw = mesh.gateway()                         # a gateway Envoy: Gateway port 8080 at gw.url(8080)
    app = mesh.client(upstreams=[("catalog", 9090)])  # gRPC: app.upstream_port("catalog", 9090)

Every Envoy gets its workload certificate by SDS, as the agent gives it: an in-process
`SdsServer` per Envoy (Unix socket in the test's directory, static cluster `sds-grpc`),
serving `default` and `ROOTCA` for `spiffe://cluster.local/ns/NS/sa/SA` from the
control plane's CA (`mesh.ca`, kept in the test's directory). `v1.rotate()` gives a
sidecar a new key and certificate; `v1.set_secrets(...)` serves anything (a wrong CA).

The control plane runs on its own event loop in a background thread; tests stay sync.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import itertools
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx

from amimesh.agent import sds as sds_mod
from amimesh.agent.bootstrap import bootstrap
from amimesh.agent.envoy import EnvoyProcess
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.identity import csr as csr_mod
from amimesh.identity.ca import CertificateAuthority
from amimesh.identity.issued import Issued
from amimesh.identity.spiffe import SpiffeId
from amimesh.model import hosts
from amimesh.model.proxy import AccessLogFormat, GatewayPort, InboundPort, Proxy, Upstream
from amimesh.model.snapshot import Instance
from amimesh.resources import parse_documents
from tests.e2e.backend import Backend

T = TypeVar("T")

# An upstream port to give a sidecar: an `Upstream` (listen_port 0: pick a free one), or
# (host, port) or (host, port, protocol); short host names expand in the sidecar's
# namespace. The protocol defaults to GRPC.
UpstreamSpec = Upstream | tuple[str, int] | tuple[str, int, str]
# The gateway's service account, as Istio's ingress gateway's.
GATEWAY_SERVICE_ACCOUNT = "istio-ingressgateway-service-account"


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll `predicate` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed_cert(directory: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate for `host` (and 127.0.0.1) and its key, as PEM files
    in `directory`; returns (certificate path, key path), both absolute."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = (directory / f"{host}.crt").resolve()
    key_path = (directory / f"{host}.key").resolve()
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class HttpsServer:
    """A local HTTPS server (Python's ssl) answering every GET with 200 and the JSON
    bytes `body(path, sni, client_subject)` returns: the SNI of the connection's
    handshake and the client certificate's subject (empty without one). With
    `client_ca`, it requires a client certificate signed by it."""

    cert: Path
    key: Path
    body: Callable[[str, str | None, dict[str, str]], bytes]
    client_ca: Path | None = None
    sni: str | None = None
    _server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> HttpsServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                peer = self.connection.getpeercert()  # type: ignore[attr-defined]
                subject = dict(x[0] for x in peer["subject"]) if peer else {}
                body = owner.body(self.path, owner.sni, subject)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca)

        def remember_sni(sock: ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext) -> None:
            owner.sni = name

        context.sni_callback = remember_sni
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class GrpcBackend:
    """A gRPC server for tests, with no generated code: method `/test.Echo/Say` answers
    the request bytes prefixed with `NAME|`, so a test sees which backend served it."""

    SERVICE = "test.Echo"
    METHOD = f"/{SERVICE}/Say"

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self._pool = ThreadPoolExecutor(max_workers=4)
        self._server = grpc.server(self._pool)
        say = grpc.unary_unary_rpc_method_handler(self._say)  # raw bytes in and out
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(self.SERVICE, {"Say": say}),)
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def _say(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls += 1
        return self.name.encode() + b"|" + request

    def start(self) -> GrpcBackend:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(None).wait(5)
        self._pool.shutdown(wait=True)


@dataclass
class Sidecar:
    proxy: Proxy
    envoy: EnvoyProcess
    backend: Backend | None = None
    instance: Instance | None = None
    grpc_backend: GrpcBackend | None = None
    # Its SDS server, SPIFFE ID and current certificate (see `rotate`).
    sds: sds_mod.SdsServer | None = None
    identity: SpiffeId | None = None
    issued: Issued | None = None
    _mesh: Mesh | None = field(default=None, repr=False)
    _private_dir: Path | None = field(default=None, repr=False)

    def rotate(self, ttl: datetime.timedelta | None = None) -> Issued:
        """A new key and certificate (from `mesh.ca`, `ttl` defaulting to the mesh's),
        pushed to Envoy by SDS at once; returns the new certificate."""
        assert self._mesh is not None and self.identity is not None
        issued, key = self._mesh.issue(self.identity, ttl)
        self.set_secrets(
            sds_mod.Secrets(issued.certificate_chain, csr_mod.key_pem(key), issued.trust_bundle)
        )
        self.issued = issued
        return issued

    def set_secrets(self, secrets: sds_mod.Secrets) -> None:
        """Serve these secrets (`default` and `ROOTCA`) to this Envoy from now on."""
        assert self._mesh is not None and self.sds is not None
        sds = self.sds

        async def update() -> None:
            sds.update(secrets)

        self._mesh._call(update())

    def served_serials(self) -> set[str]:
        """Serials (lower-case hex) of the workload certificates Envoy uses now, from
        its admin `/certs` (only certificates some listener or cluster holds)."""
        data = json.loads(self.envoy.admin("/certs"))
        out = set()
        for entry in data.get("certificates", []):
            for cert in entry.get("cert_chain") or []:
                serial = str(cert.get("serial_number", "")).lower().lstrip("0")
                if serial:
                    out.add(serial)
        return out

    def access_log_lines(self) -> list[str]:
        """The lines of this proxy's Envoy access log so far (Envoy flushes it every
        second); [] before the first."""
        if not self.proxy.access_log:
            return []
        try:
            return Path(self.proxy.access_log).read_text().splitlines()
        except FileNotFoundError:
            return []

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.outbound_port}"

    def http(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client whose requests go through this sidecar's outbound listener."""
        return httpx.Client(proxy=self.proxy_url, trust_env=False, timeout=10.0, **kwargs)

    def stats(self) -> str:
        return self.envoy.admin("/stats")

    def upstream_port(self, host: str, port: int) -> int:
        """The local port of this sidecar that reaches `host`:`port` (an upstream)."""
        full = hosts.expand(host, self.proxy.namespace)
        for u in self.proxy.upstreams:
            if u.host in (host, full) and u.port == port:
                return u.listen_port
        raise KeyError(f"no upstream {host}:{port} on {self.proxy.id}")

    def listen_port(self, server_port: int) -> int:
        """Where this gateway listens for the Gateway server port `server_port`."""
        for g in self.proxy.gateway_ports:
            if g.port == server_port:
                return g.listen_port
        raise KeyError(f"gateway {self.proxy.id} does not map port {server_port}")

    def url(self, server_port: int, scheme: str = "http") -> str:
        """The base URL of this gateway's listener for Gateway server port `server_port`."""
        return f"{scheme}://{self.proxy.address}:{self.listen_port(server_port)}"


@dataclass
class Mesh:
    workdir: Path
    delta: bool = True
    debounce_s: float = 0.02
    config_dir: Path | None = None
    # Lifetime of the certificates the harness gives sidecars (`Sidecar.rotate`).
    cert_ttl: datetime.timedelta = datetime.timedelta(hours=24)
    # With a token, the control plane also serves its HTTP API (`cp.api_port`), whose
    # `POST /api/v1/certificates` real agents use.
    api_token: str | None = None
    # Every proxy's Envoy access log goes to `workdir/<id>.access.log` (`Sidecar.access_log`)
    # unless this is off.
    access_logs: bool = True
    access_log_format: AccessLogFormat = "json"
    # Traces: where the control plane forwards every export (`host:port`), and whether it
    # runs its Zipkin span receiver (which every bootstrap then reaches).
    trace_forward: str | None = None
    zipkin: bool = False
    sidecars: list[Sidecar] = field(default_factory=list)
    _cp: ControlPlane | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _sources: itertools.count[int] = field(default_factory=itertools.count)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Mesh:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._cp = self._call(self._make_cp())
        return self

    async def _make_cp(self) -> ControlPlane:
        cp = ControlPlane(
            ControlPlaneConfig(
                xds_port=0,
                debounce_s=self.debounce_s,
                config_dir=self.config_dir,
                ca_dir=self.workdir / "ca",
                cert_ttl_s=self.cert_ttl.total_seconds(),
                api_port=0 if self.api_token else None,
                api_token=self.api_token,
                trace_forward=self.trace_forward,
                zipkin_port=0 if self.zipkin else None,
            )
        )
        await cp.start()
        return cp

    def stop(self) -> None:
        for s in self.sidecars:
            s.envoy.stop()
            if s.backend is not None:
                s.backend.stop()
            if s.grpc_backend is not None:
                s.grpc_backend.stop()
            if s.sds is not None and self._loop is not None:
                self._call(s.sds.stop())
            sds_mod.remove_private_dir(s._private_dir)
        self.sidecars.clear()
        if self._cp is not None:
            self._call(self._cp.stop())
            self._cp = None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(5)
            self._loop.close()
            self._loop = None

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        assert self._loop is not None
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    @property
    def cp(self) -> ControlPlane:
        assert self._cp is not None
        return self._cp

    # --- identity ----------------------------------------------------------------------

    @property
    def ca(self) -> CertificateAuthority:
        """The control plane's CA (a self-signed root in `workdir/ca`)."""
        return self.cp.identity.ca

    @property
    def trust_bundle(self) -> str:
        """The roots every sidecar trusts, PEM."""
        return self.ca.trust_bundle

    def issue(
        self, identity: SpiffeId, ttl: datetime.timedelta | None = None
    ) -> tuple[Issued, csr_mod.PrivateKey]:
        """A fresh key and a certificate for `identity` from `mesh.ca`."""
        now = datetime.datetime.now(datetime.UTC)
        return self.ca.issue(identity, ttl=ttl or self.cert_ttl, now=now)

    # --- config ------------------------------------------------------------------------

    def apply(self, text: str, source: str | None = None) -> None:
        """Put a YAML text into the store as one source (replaced if `source` repeats)."""
        name = source or f"test-{next(self._sources)}.yaml"
        result = parse_documents(text, name)
        assert not result.errors, [str(e) for e in result.errors]
        errors = self.cp.store.set_source(name, result)
        assert not errors, [str(e) for e in errors]

    def remove(self, source: str) -> None:
        self.cp.store.remove_source(source)

    def wait_synced(self, timeout: float = 15.0) -> None:
        """Until every connected proxy has acked the current config."""
        self._call(self.cp.xds.wait_synced(timeout=timeout), timeout + 5)

    # --- proxies -----------------------------------------------------------------------

    def _start_sidecar(
        self,
        proxy: Proxy,
        backend: Backend | None = None,
        grpc_backend: GrpcBackend | None = None,
    ) -> Sidecar:
        if self.access_logs:
            proxy = dataclasses.replace(
                proxy,
                access_log=str(self.workdir / f"{proxy.id}.access.log"),
                access_log_format=self.access_log_format,
            )
        admin_port = free_port()
        socket, private = sds_mod.socket_path(self.workdir / f"{proxy.id}.sds.sock")
        cfg = bootstrap(
            proxy,
            xds_host="127.0.0.1",
            xds_port=self.cp.xds_port,
            admin_port=admin_port,
            delta=self.delta,
            locality=proxy.locality,
            sds_socket=str(socket),
            telemetry_http_port=self.cp.traces.zipkin_port,
        )
        path = self.workdir / f"{proxy.id}.json"
        path.write_text(json.dumps(cfg))
        envoy = EnvoyProcess(path, admin_port, self.workdir / f"{proxy.id}.log")
        # Listed before Envoy starts, so that `stop` ends it and its backends whatever happens.
        sidecar = Sidecar(
            proxy=proxy,
            envoy=envoy,
            backend=backend,
            grpc_backend=grpc_backend,
            sds=sds_mod.SdsServer(socket, name=f"sds {proxy.id}"),
            identity=self.cp.identity.identity(proxy.namespace, proxy.service_account),
            _mesh=self,
            _private_dir=private,
        )
        self.sidecars.append(sidecar)
        assert sidecar.sds is not None
        self._call(sidecar.sds.start())
        sidecar.rotate()
        envoy.start()
        envoy.wait_ready()
        return sidecar

    def workload(
        self,
        name: str,
        labels: Mapping[str, str],
        *,
        port: int = 8080,
        namespace: str = "default",
        service_account: str = "default",
        outbound: bool = False,
        locality: str = "",
        register: bool = True,
        upstreams: Sequence[UpstreamSpec] = (),
        app_port: int | None = None,
        protocol: str = "HTTP",
    ) -> Sidecar:
        """A backend plus its sidecar (inbound listener for `port`), registered as ready.

        The backend is an HTTP echo `Backend`, or with `protocol="GRPC"` a `GrpcBackend`
        (in `grpc_backend`). With `app_port`, the app is the caller's, already listening
        there, and no backend is started.
        """
        backend: Backend | None = None
        grpc_backend: GrpcBackend | None = None
        if app_port is not None:
            target = app_port
        elif protocol.upper() == "GRPC":
            grpc_backend = GrpcBackend(name).start()
            target = grpc_backend.port
        else:
            backend = Backend(name).start()
            target = backend.port
        listen = free_port()
        proxy = Proxy(
            id=f"{name}.{namespace}",
            workload=name,
            namespace=namespace,
            labels=dict(labels),
            service_account=service_account,
            outbound_port=free_port() if outbound else 0,
            inbound=(
                InboundPort(port=port, listen_port=listen, app_port=target, protocol=protocol),
            ),
            locality=locality,
            upstreams=_upstreams(upstreams, namespace),
        )
        sidecar = self._start_sidecar(proxy, backend, grpc_backend)
        sidecar.instance = Instance(
            id=proxy.id,
            workload=name,
            namespace=namespace,
            labels=dict(labels),
            service_account=service_account,
            ports={port: listen},
            locality=locality,
        )
        if register:
            self.cp.store.register_instance(sidecar.instance)
        return sidecar

    def client(
        self,
        name: str = "client",
        labels: Mapping[str, str] | None = None,
        *,
        namespace: str = "default",
        locality: str = "",
        upstreams: Sequence[UpstreamSpec] = (),
    ) -> Sidecar:
        """A sidecar with only the outbound (HTTP_PROXY) listener, for sending requests,
        and the local `upstreams` ports (for gRPC and TCP clients)."""
        proxy = Proxy(
            id=f"{name}.{namespace}",
            workload=name,
            namespace=namespace,
            labels=dict(labels or {"app": name}),
            outbound_port=free_port(),
            locality=locality,
            upstreams=_upstreams(upstreams, namespace),
        )
        return self._start_sidecar(proxy)

    def gateway(
        self,
        name: str = "ingress",
        labels: Mapping[str, str] | None = None,
        *,
        ports: Mapping[int, int] | None = None,
        namespace: str = "default",
        service_account: str = GATEWAY_SERVICE_ACCOUNT,
    ) -> Sidecar:
        """A gateway Envoy (labels default to `istio: ingressgateway`).

        `ports` maps Gateway server ports to host ports, 0 meaning a free one; by
        default server port 8080 gets a free port. `url(8080)` is where to send requests.
        """
        mapping = {8080: 0} if ports is None else dict(ports)
        proxy = Proxy(
            id=f"{name}.{namespace}",
            kind="gateway",
            workload=name,
            namespace=namespace,
            labels=dict({"istio": "ingressgateway"} if labels is None else labels),
            service_account=service_account,
            gateway_ports=tuple(
                GatewayPort(port=p, listen_port=listen or free_port())
                for p, listen in mapping.items()
            ),
        )
        return self._start_sidecar(proxy)


def _upstreams(specs: Sequence[UpstreamSpec], namespace: str) -> tuple[Upstream, ...]:
    out = []
    for spec in specs:
        if isinstance(spec, Upstream):
            u = spec
        else:
            protocol = spec[2] if len(spec) == 3 else "GRPC"
            u = Upstream(host=spec[0], port=spec[1], listen_port=0, protocol=protocol)
        out.append(
            Upstream(
                host=hosts.expand(u.host, namespace),
                port=u.port,
                listen_port=u.listen_port or free_port(),
                protocol=u.protocol,
            )
        )
    return tuple(out)
