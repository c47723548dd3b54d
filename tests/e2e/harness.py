"""A real mesh for tests: the control plane in-process, real Envoy sidecars, test backends.

    mesh.apply(yaml_text)                       # resources into the store
    v1 = mesh.workload("reviews-v1", {"app": "reviews", "version": "v1"}, port=9080)
    client = mesh.client()                      # a sidecar with the outbound listener
    mesh.wait_synced()
    httpx.get("http://reviews:9080/", proxy=client.proxy_url)

The control plane runs on its own event loop in a background thread; tests stay sync.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from amimesh.agent.bootstrap import bootstrap
from amimesh.agent.envoy import EnvoyProcess
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.model.proxy import InboundPort, Proxy
from amimesh.model.snapshot import Instance
from amimesh.resources import parse_documents
from tests.e2e.backend import Backend

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sidecar:
    proxy: Proxy
    envoy: EnvoyProcess
    backend: Backend | None = None
    instance: Instance | None = None

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.outbound_port}"

    def http(self, **kwargs: Any) -> httpx.Client:
        """An HTTP client whose requests go through this sidecar's outbound listener."""
        return httpx.Client(proxy=self.proxy_url, trust_env=False, timeout=10.0, **kwargs)

    def stats(self) -> str:
        return self.envoy.admin("/stats")


@dataclass
class Mesh:
    workdir: Path
    delta: bool = True
    debounce_s: float = 0.02
    config_dir: Path | None = None
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
            ControlPlaneConfig(xds_port=0, debounce_s=self.debounce_s, config_dir=self.config_dir)
        )
        await cp.start()
        return cp

    def stop(self) -> None:
        for s in self.sidecars:
            s.envoy.stop()
            if s.backend is not None:
                s.backend.stop()
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

    def _start_sidecar(self, proxy: Proxy) -> Sidecar:
        admin_port = free_port()
        cfg = bootstrap(
            proxy,
            xds_host="127.0.0.1",
            xds_port=self.cp.xds_port,
            admin_port=admin_port,
            delta=self.delta,
            locality=proxy.locality,
        )
        path = self.workdir / f"{proxy.id}.json"
        path.write_text(json.dumps(cfg))
        envoy = EnvoyProcess(path, admin_port, self.workdir / f"{proxy.id}.log")
        sidecar = Sidecar(proxy=proxy, envoy=envoy)
        self.sidecars.append(sidecar)
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
    ) -> Sidecar:
        """A backend plus its sidecar (inbound listener for `port`), registered as ready."""
        backend = Backend(name).start()
        listen = free_port()
        proxy = Proxy(
            id=f"{name}.{namespace}",
            workload=name,
            namespace=namespace,
            labels=dict(labels),
            service_account=service_account,
            outbound_port=free_port() if outbound else 0,
            inbound=(InboundPort(port=port, listen_port=listen, app_port=backend.port),),
            locality=locality,
        )
        sidecar = self._start_sidecar(proxy)
        sidecar.backend = backend
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
    ) -> Sidecar:
        """A sidecar with only the outbound (HTTP_PROXY) listener, for sending requests."""
        proxy = Proxy(
            id=f"{name}.{namespace}",
            workload=name,
            namespace=namespace,
            labels=dict(labels or {"app": name}),
            outbound_port=free_port(),
            locality=locality,
        )
        return self._start_sidecar(proxy)
