"""The shop's apps as real processes, without the mesh.

Each app runs as `python -m NAME` in examples/shop/apps with the environment the
runtime would give it (PORT, HTTP_PROXY, NO_PROXY, AMI_UPSTREAM_CATALOG_9090,
AMI_INSTANCE). Instead of a sidecar, HTTP_PROXY points at a small forward proxy in
the test: it takes absolute-URL requests (`GET http://reviews:9080/reviews/1`), sends
them to the app of that host name, and records the headers, so the tests can see what
each app sent on.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.e2e.harness import free_port

APPS = Path(__file__).resolve().parents[2] / "examples" / "shop" / "apps"
HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "te"}
TRACE = {
    "x-request-id": "",  # set per test
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "shop=test",
    "b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
    "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
    "x-b3-spanid": "e457b5a2e4d86bd1",
    "x-b3-parentspanid": "05e3ac9a4f6e3b90",
    "x-b3-sampled": "1",
}


# --- the forward proxy that stands in for the sidecar ----------------------------------


@dataclass(frozen=True)
class Record:
    host: str
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class ForwardProxy:
    """Routes `http://NAME:PORT/...` to 127.0.0.1:ports[NAME]; a name in `down` gets 503."""

    ports: dict[str, int] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    records: list[Record] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ForwardProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                host = url.hostname or ""
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = url.path + (f"?{url.query}" if url.query else "")
                proxy.records.append(Record(host, self.command, path, headers))
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                if host in proxy.down or host not in proxy.ports:
                    self._reply(503, b"no healthy upstream", "text/plain")
                    return
                sent = {k: v for k, v in headers.items() if k not in HOP_BY_HOP}
                conn = http.client.HTTPConnection("127.0.0.1", proxy.ports[host], timeout=20)
                try:
                    conn.request(self.command, path, body=body, headers=sent)
                    response = conn.getresponse()
                    data = response.read()
                    kind = response.getheader("content-type", "application/octet-stream")
                    self._reply(response.status, data, kind)
                except OSError:
                    self._reply(503, b"upstream connect error", "text/plain")
                finally:
                    conn.close()

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def sent_to(self, host: str, request_id: str) -> list[Record]:
        return [
            r
            for r in list(self.records)
            if r.host == host and r.headers.get("x-request-id") == request_id
        ]


# --- the apps as processes ---------------------------------------------------------------


@dataclass
class App:
    name: str  # the instance's name, e.g. reviews-v3
    module: str
    port: int
    env: dict[str, str]
    log_path: Path
    grpc: bool = False
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> App:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=APPS,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            if self._ready():
                return
            time.sleep(0.05)
        pytest.fail(f"{self.name} not ready in time:\n{self.log()}")

    def _ready(self) -> bool:
        try:
            if self.grpc:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            status, _, _ = request(self.port, "GET", "/health")
            return status == 200
        except OSError:
            return False

    def terminate(self, timeout: float = 5.0, *, signal_it: bool = True) -> int | None:
        """SIGTERM (unless already sent), then the exit code (None if it had to be killed)."""
        code: int | None = None
        if self.proc is not None:
            if signal_it and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        return code


def request(
    port: int,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, str]:
    """One request straight to 127.0.0.1:port (no proxy): status, headers, body text."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        conn.close()


# (instance name, module, env, grpc)
APP_SPECS: list[tuple[str, str, dict[str, str], bool]] = [
    ("ratings", "ratings", {}, False),
    ("reviews-v3", "reviews", {"REVIEWS_VERSION": "v3"}, False),
    ("catalog", "catalog", {}, True),
    ("users", "users", {}, False),
    ("cart", "cart", {}, False),
    ("payment", "payment", {}, False),
    ("frontend", "frontend", {}, False),
]
SERVICE_OF = {"reviews-v3": "reviews"}


def start_apps(workdir: Path, proxy_url: str) -> dict[str, App]:
    base = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    ports = {name: free_port() for name, _, _, _ in APP_SPECS}
    apps: dict[str, App] = {}
    for name, module, extra, grpc in APP_SPECS:
        env = {
            **base,
            "PORT": str(ports[name]),
            "HTTP_PROXY": proxy_url,
            "http_proxy": proxy_url,
            "NO_PROXY": "localhost,127.0.0.1,::1",
            "no_proxy": "localhost,127.0.0.1,::1",
            "AMI_UPSTREAM_CATALOG_9090": f"127.0.0.1:{ports['catalog']}",
            "AMI_WORKLOAD": name,
            "AMI_INSTANCE": f"{name}-0",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **extra,
        }
        apps[name] = App(name, module, ports[name], env, workdir / f"{name}.log", grpc)
    try:
        for app in apps.values():
            app.start()
        deadline = time.monotonic() + 20
        for app in apps.values():
            app.wait_ready(deadline)
    except BaseException:
        for app in apps.values():
            app.terminate(timeout=2)
        raise
    return apps


@dataclass
class Shop:
    apps: dict[str, App]
    proxy: ForwardProxy

    @property
    def frontend(self) -> int:
        return self.apps["frontend"].port

    def page(self, path: str, **headers: str) -> tuple[int, str]:
        status, _, body = request(self.frontend, "GET", path, headers)
        return status, body


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    proxy = ForwardProxy().start()
    try:
        apps = start_apps(tmp_path_factory.mktemp("shop"), proxy.url)
        try:
            for name, app in apps.items():
                proxy.ports[SERVICE_OF.get(name, name)] = app.port
            yield Shop(apps, proxy)
        finally:
            for app in apps.values():
                app.terminate()
    finally:
        proxy.stop()


def _trace(request_id: str) -> dict[str, str]:
    return {**TRACE, "x-request-id": request_id}


# --- tests ------------------------------------------------------------------------------


def test_product_page_shows_product_reviews_and_red_stars(shop: Shop) -> None:
    status, body = shop.page("/productpage?u=alice")
    assert status == 200
    assert "The Late Train" in body and "Mara Ellison" in body  # catalog over gRPC
    assert "I read it in one sitting" in body  # reviews
    assert '<b class="reviews-version">reviews-v3</b>' in body
    assert "reviews-v3-0" in body
    assert body.count('class="stars stars-red"') == 2  # ratings, as v3 shows them
    assert "\u2605\u2605\u2605\u2605\u2606" in body
    assert "unavailable" not in body
    status, index = shop.page("/")
    assert status == 200 and "The Late Train" in index


def test_other_products_and_a_missing_one(shop: Shop) -> None:
    status, body = shop.page("/productpage?id=4")
    assert status == 200 and "Bread, Slowly" in body and "My bread finally rises" in body
    status, body = shop.page("/productpage?id=999")
    assert "Sorry, product details are currently unavailable for this book." in body


def test_trace_headers_are_forwarded_to_reviews_and_ratings(shop: Shop) -> None:
    request_id = str(uuid.uuid4())
    status, _ = shop.page("/productpage?u=jason", **_trace(request_id))
    assert status == 200
    for host in ("reviews", "ratings"):
        sent = shop.proxy.sent_to(host, request_id)
        assert len(sent) == 1, f"{host}: {sent}"
        headers = sent[0].headers
        for name, value in _trace(request_id).items():
            assert headers.get(name) == value, f"{host} got {name}={headers.get(name)}"
        assert headers.get("end-user") == "jason"
    # catalog is called over gRPC, not through the proxy: its log names the request id.
    deadline = time.monotonic() + 5
    while request_id not in shop.apps["catalog"].log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"x-request-id={request_id}" in shop.apps["catalog"].log()


def test_guest_sends_no_end_user(shop: Shop) -> None:
    request_id = str(uuid.uuid4())
    shop.page("/productpage", **{"x-request-id": request_id, "end-user": "jason"})
    (sent,) = shop.proxy.sent_to("reviews", request_id)
    assert "end-user" not in sent.headers


def test_ratings_down_shows_ratings_unavailable(shop: Shop) -> None:
    shop.proxy.down.add("ratings")
    try:
        status, body = shop.page("/productpage?u=alice")
    finally:
        shop.proxy.down.discard("ratings")
    assert status == 200
    assert body.count("Ratings service is currently unavailable") == 2
    assert "stars-red" not in body
    assert "reviews-v3" in body and "I read it in one sitting" in body


def test_reviews_down_shows_reviews_unavailable(shop: Shop) -> None:
    shop.proxy.down.add("reviews")
    try:
        status, body = shop.page("/productpage")
    finally:
        shop.proxy.down.discard("reviews")
    assert status == 200
    assert "Sorry, product reviews are currently unavailable for this book." in body
    assert "The Late Train" in body


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_login_sets_an_es512_jwt_that_verifies_against_the_jwks(shop: Shop) -> None:
    status, headers, _ = request(shop.frontend, "GET", "/login?u=jason")
    assert status == 303 and headers["Location"] == "/productpage"
    cookies = dict(c.split(";")[0].split("=", 1) for c in headers.get_all("Set-Cookie") or [])
    assert cookies["user"] == "jason"
    token = cookies["token"]

    _, _, jwks_text = request(shop.apps["users"].port, "GET", "/.well-known/jwks.json")
    (jwk,) = json.loads(jwks_text)["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-521", "ES512")
    header_b64, payload_b64, sig_b64 = token.split(".")
    header = json.loads(_b64(header_b64))
    assert header["alg"] == "ES512" and header["kid"] == jwk["kid"]
    signature = _b64(sig_b64)
    assert len(signature) == 132
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_b64(jwk["x"]), "big"),
        int.from_bytes(_b64(jwk["y"]), "big"),
        ec.SECP521R1(),
    ).public_key()
    der = encode_dss_signature(
        int.from_bytes(signature[:66], "big"), int.from_bytes(signature[66:], "big")
    )
    public.verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA512()))
    claims = json.loads(_b64(payload_b64))
    assert claims["iss"] == "users.shop.ami" and claims["aud"] == "shop"
    assert claims["sub"] == "jason" and "customers" in claims["groups"]
    assert claims["exp"] > time.time()

    # Signed in by cookie: the page names the user, and calls carry the user and token.
    request_id = str(uuid.uuid4())
    status, body = shop.page(
        "/productpage", cookie=f"user=jason; token={token}", **{"x-request-id": request_id}
    )
    assert 'Signed in as <b class="user">jason</b>' in body
    (sent,) = shop.proxy.sent_to("ratings", request_id)
    assert sent.headers["end-user"] == "jason"
    assert sent.headers["authorization"] == f"Bearer {token}"
    assert f"token={token}" in sent.headers["cookie"]


def test_unknown_user_cannot_sign_in(shop: Shop) -> None:
    status, headers, body = request(shop.frontend, "GET", "/login?u=mallory")
    assert status == 401 and "Unknown user" in body
    assert headers.get("Set-Cookie") is None


def test_cart_and_checkout(shop: Shop) -> None:
    user = f"shopper{uuid.uuid4().hex[:8]}"
    for item in (2, 2, 1):
        status, headers, _ = request(shop.frontend, "POST", f"/cart/add?item={item}&u={user}")
        assert status == 303 and headers["Location"] == "/cart"
    status, cart = shop.page(f"/cart?u={user}")
    assert status == 200
    assert "Notes for New Engineers" in cart and "The Late Train" in cart
    assert "$67.99" in cart  # 2 x 24.50 + 18.99
    status, _, paid = request(shop.frontend, "POST", f"/checkout?u={user}")
    assert status == 200 and "Paid $67.99" in paid
    pay = [r for r in shop.proxy.records if r.host == "payment" and r.path == "/pay"]
    assert pay and pay[-1].headers["end-user"] == user
    _, empty = shop.page(f"/cart?u={user}")
    assert "Your cart is empty." in empty


def test_checkout_when_payment_is_down(shop: Shop) -> None:
    shop.proxy.down.add("payment")
    try:
        status, _, body = request(shop.frontend, "POST", "/checkout?item=1&u=bob")
    finally:
        shop.proxy.down.discard("payment")
    assert status == 503
    assert "payment is currently unavailable" in body


def test_static_and_health(shop: Shop) -> None:
    status, headers, css = request(shop.frontend, "GET", "/static/style.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css") and "body" in css
    for name, app in shop.apps.items():
        if not app.grpc:
            assert request(app.port, "GET", "/health")[::2] == (200, "ok\n"), name


def test_every_app_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    proxy = ForwardProxy().start()
    apps: dict[str, App] = {}
    try:
        apps = start_apps(tmp_path, proxy.url)
        started = time.monotonic()
        for app in apps.values():
            assert app.proc is not None
            app.proc.send_signal(signal.SIGTERM)
        # One SIGTERM each: a second one during interpreter shutdown would kill outright.
        codes = {name: app.terminate(5, signal_it=False) for name, app in apps.items()}
        assert codes == {name: 0 for name in apps}, {n: a.log() for n, a in apps.items()}
        assert time.monotonic() - started < 5
        for name, app in apps.items():
            assert "stopped" in app.log(), name
    finally:
        for app in apps.values():
            app.terminate(2)
        proxy.stop()
