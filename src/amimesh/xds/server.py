"""The xDS server: a grpc.aio ADS endpoint that keeps every connected proxy in sync.

The caller hands over a generator, `generate(proxy) -> ProxyConfig`, that reads the
current snapshot, and calls `config_changed()` whenever that snapshot changes. A burst
of changes is debounced into one regeneration of every connected proxy; each stream's
state machine then sends only what differs for its proxy.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence

import grpc  # type: ignore[import-untyped]

from amimesh.model.proxy import Proxy
from amimesh.translate.built import ProxyConfig
from amimesh.xds import encode
from amimesh.xds.debounce import Debouncer
from amimesh.xds.servicer import AdsServicer, Session
from amimesh.xds.status import Mode, ProxySyncStatus
from amimesh.xds.stream import StreamState

logger = logging.getLogger(__name__)

Generate = Callable[[Proxy], ProxyConfig]

_GRPC_OPTIONS = [
    # Fail on a port already taken instead of silently sharing it.
    ("grpc.so_reuseport", 0),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
# Regenerating many proxies is CPU work on the loop; let streams run between slices.
_YIELD_EVERY = 50


class _Pulse:
    """Wakes every waiter each time something changes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._waiters = 0

    def fire(self) -> None:
        if self._waiters:
            self._event.set()
            self._event = asyncio.Event()

    async def wait(self) -> None:
        self._waiters += 1
        try:
            await self._event.wait()
        finally:
            self._waiters -= 1


class XdsServer:
    """Aggregated Discovery Service (SotW and delta) for Envoy proxies.

        server = XdsServer(generate)          # generate(proxy) -> ProxyConfig
        port = await server.start()           # bootstraps point Envoy at this port
        ...; server.config_changed()          # after every snapshot change
        server.status()                       # per stream: versions, ACKs, NACKs
        await server.stop()

    A proxy is generated for when its stream opens (from the node id and metadata of
    the first request) and after every debounced change. `on_disconnect(proxy)` is
    called when the last stream of a proxy id ends (to drop what is cached for it).
    `ack_timeout_s` bounds how long a push waits for a proxy's ACK before going on.
    `services` add more gRPC services to the same server (the control plane's access
    log and trace receivers): each is called with the server before it starts.
    """

    def __init__(
        self,
        generate: Generate,
        *,
        debounce_s: float = 0.05,
        max_debounce_s: float | None = None,
        ack_timeout_s: float = 10.0,
        on_disconnect: Callable[[Proxy], None] | None = None,
        services: Sequence[Callable[[grpc.aio.Server], None]] = (),
    ) -> None:
        self._generate = generate
        self._services = services
        self._on_disconnect = on_disconnect
        self._debounce_s = debounce_s
        self._max_debounce_s = max_debounce_s
        self._ack_timeout_s = ack_timeout_s
        self._sessions: dict[int, Session] = {}
        self._unsynced: set[int] = set()
        self._unsettled: set[int] = set()
        self._stream_ids = itertools.count(1)
        self._server: grpc.aio.Server | None = None
        self._debouncer: Debouncer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pulse = _Pulse()
        self.port = 0  # the bound port while started

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on `host:port` (0 picks a free port) and return the bound port."""
        if self._server is not None:
            raise RuntimeError("XdsServer already started")
        self._loop = asyncio.get_running_loop()
        server = grpc.aio.server(options=_GRPC_OPTIONS)
        servicer = AdsServicer(_Hub(self))
        encode.add_ads_handlers(
            server, servicer.StreamAggregatedResources, servicer.DeltaAggregatedResources
        )
        for add_service in self._services:
            add_service(server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        bound = int(server.add_insecure_port(address))
        if bound == 0:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        self._server = server
        self.port = bound
        self._debouncer = Debouncer(
            self._regenerate,
            delay=self._debounce_s,
            max_delay=self._max_debounce_s,
            on_idle=self._pulse.fire,
        )
        self._debouncer.start()
        logger.info("xDS server listening on %s:%d", host, bound)
        return bound

    async def stop(self, grace: float = 1.0) -> None:
        """End every stream, stop listening, and cancel the server's tasks.

        Streams are ended cleanly so proxies reconnect elsewhere at once; a stream
        stuck writing to a slow proxy is cancelled after `grace` seconds.
        """
        server, self._server = self._server, None
        debouncer, self._debouncer = self._debouncer, None
        self.port = 0
        for session in list(self._sessions.values()):
            session.end()
        if server is not None:
            await server.stop(grace)
        if debouncer is not None:
            await debouncer.close()

    # -- changes --------------------------------------------------------------------

    def config_changed(self) -> None:
        """The snapshot changed: regenerate every proxy after the debounce delay.

        Safe to call from any thread.
        """
        debouncer, loop = self._debouncer, self._loop
        if debouncer is None or loop is None or loop.is_closed():
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            debouncer.trigger()
        else:
            loop.call_soon_threadsafe(debouncer.trigger)

    async def _regenerate(self) -> None:
        done: dict[str, tuple[Proxy, ProxyConfig]] = {}
        for count, session in enumerate(list(self._sessions.values()), start=1):
            if session.stream_id not in self._sessions:
                continue
            config = self._generate_once(session.proxy, done)
            if config is not None and session.state.set_config(config):
                session.wake.set()
            self._track(session)
            if count % _YIELD_EVERY == 0:
                await asyncio.sleep(0)

    def _generate_once(
        self, proxy: Proxy, done: dict[str, tuple[Proxy, ProxyConfig]]
    ) -> ProxyConfig | None:
        # Several streams of one proxy (a reconnect overlapping the old stream)
        # share one generation.
        previous = done.get(proxy.id)
        if previous is not None and previous[0] == proxy:
            return previous[1]
        try:
            config = self._generate(proxy)
        except Exception:
            logger.exception("config generation failed for proxy %s; it keeps its config", proxy.id)
            return None
        done[proxy.id] = (proxy, config)
        return config

    # -- sessions (for the servicer, through `_Hub`) ---------------------------------

    def _open(self, proxy: Proxy, mode: Mode) -> Session:
        state = StreamState(mode, ack_timeout=self._ack_timeout_s)
        state.set_config(self._generate(proxy))
        session = Session(next(self._stream_ids), proxy, state)
        self._sessions[session.stream_id] = session
        self._track(session)
        return session

    def _close(self, session: Session) -> None:
        self._sessions.pop(session.stream_id, None)
        self._unsynced.discard(session.stream_id)
        self._unsettled.discard(session.stream_id)
        self._pulse.fire()
        proxy_id = session.proxy.id
        if self._on_disconnect is None:
            return
        if any(s.proxy.id == proxy_id for s in self._sessions.values()):
            return
        try:
            self._on_disconnect(session.proxy)
        except Exception:
            logger.exception("on_disconnect failed for proxy %s", proxy_id)

    def _track(self, session: Session) -> None:
        sid = session.stream_id
        if sid not in self._sessions:
            return
        synced, settled = session.state.sync_state()
        if synced:
            self._unsynced.discard(sid)
        else:
            self._unsynced.add(sid)
        if settled:
            self._unsettled.discard(sid)
        else:
            self._unsettled.add(sid)
        self._pulse.fire()

    # -- observation ----------------------------------------------------------------

    def status(self) -> list[ProxySyncStatus]:
        """Per connected stream: who, which mode, and per type what was sent, accepted
        and rejected. Sorted by proxy id, then stream id."""
        sessions = sorted(self._sessions.values(), key=lambda s: (s.proxy.id, s.stream_id))
        return [s.status() for s in sessions]

    def proxies(self) -> list[Proxy]:
        """Every connected proxy once (as its newest stream describes it), by id."""
        newest: dict[str, Session] = {}
        for s in self._sessions.values():
            if s.proxy.id not in newest or s.stream_id > newest[s.proxy.id].stream_id:
                newest[s.proxy.id] = s
        return [newest[pid].proxy for pid in sorted(newest)]

    @property
    def pending(self) -> bool:
        """A change is waiting for (or in) its debounced regeneration: what proxies hold
        may be about to change, so none of them counts as synced."""
        return self._debouncer is not None and not self._debouncer.idle

    def is_synced(self, *, proxies: int | None = None, accept_nacks: bool = False) -> bool:
        """Whether every connected proxy holds what was last generated for it.

        With `proxies`, also that at least that many streams are connected. With
        `accept_nacks`, a proxy that rejected its latest config counts as done.
        """
        if self._debouncer is None or not self._debouncer.idle:
            return False
        if proxies is not None and len(self._sessions) < proxies:
            return False
        pending = self._unsettled if accept_nacks else self._unsynced
        return not pending

    async def wait_synced(
        self,
        *,
        proxies: int | None = None,
        accept_nacks: bool = False,
        # A convenience the e2e harness relies on; `asyncio.timeout` works as well.
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        """Wait until `is_synced(...)` holds; `TimeoutError` after `timeout` s if given."""
        async with asyncio.timeout(timeout):
            await self.wait_for(
                lambda xds: xds.is_synced(proxies=proxies, accept_nacks=accept_nacks)
            )

    async def wait_for(self, predicate: Callable[[XdsServer], bool]) -> None:
        """Wait until `predicate(self)` holds, checked after every request, response,
        stream opened or closed, and regeneration. Bound it with `asyncio.timeout`."""
        while not predicate(self):
            await self._pulse.wait()

    @property
    def regenerations(self) -> int:
        """How many debounced regeneration rounds have run."""
        return self._debouncer.runs if self._debouncer is not None else 0


class _Hub:
    """The servicer's view of the server: open, close and watch sessions."""

    def __init__(self, server: XdsServer) -> None:
        self._server = server

    def open(self, proxy: Proxy, mode: Mode) -> Session:
        return self._server._open(proxy, mode)

    def close(self, session: Session) -> None:
        self._server._close(session)

    def changed(self, session: Session) -> None:
        self._server._track(session)
