"""SDS: the agent serves its Envoy the workload certificate and the trust bundle over
gRPC on a Unix socket (`envoy.service.secret.v3.SecretDiscoveryService`, SotW).

    sds = SdsServer("/state/instances/web-0.default/sds.sock")
    await sds.start()
    sds.update(Secrets(certificate_chain, private_key, trust_bundle))   # each renewal
    await sds.stop()

Two secrets, named as Istio names them: `default` (a `tls_certificate`: chain and
key) and `ROOTCA` (a `validation_context`: the trust bundle). An update is pushed at
once to every open stream, so Envoy swaps certificates without dropping a
connection. The key lives in memory only: it is never written or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from amimesh.identity import workload_sds

log = logging.getLogger(__name__)

# The secrets' names, as Istio names them, and their type: as a workload reads them.
DEFAULT = workload_sds.CERTIFICATE
ROOTCA = workload_sds.TRUST
SECRET_TYPE = workload_sds.SECRET_TYPE
# sun_path holds 108 bytes with the final NUL; keep a margin.
MAX_SOCKET_PATH = 100


@dataclass(frozen=True, repr=False)
class Secrets:
    """What SDS serves. `private_key` is PEM; repr leaves it out (no key in logs)."""

    certificate_chain: str
    private_key: str = field(repr=False)
    trust_bundle: str

    def __repr__(self) -> str:
        return "Secrets(<certificate chain>, <private key>, <trust bundle>)"


def secret_protos(
    secrets: Secrets, certificate: str = DEFAULT, validation: str | None = ROOTCA
) -> dict[str, secret_pb2.Secret]:
    """The secrets `certificate` (chain and key) and `validation` (the trust bundle;
    none if None), by name: `default` and `ROOTCA` unless told."""
    tls = common_pb2.TlsCertificate(
        certificate_chain=base_pb2.DataSource(inline_bytes=secrets.certificate_chain.encode()),
        private_key=base_pb2.DataSource(inline_bytes=secrets.private_key.encode()),
    )
    out = {certificate: secret_pb2.Secret(name=certificate, tls_certificate=tls)}
    if validation is not None:
        context = common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_bytes=secrets.trust_bundle.encode())
        )
        out[validation] = secret_pb2.Secret(name=validation, validation_context=context)
    return out


def socket_path(preferred: Path) -> tuple[Path, Path | None]:
    """Where to listen: `preferred` if short enough for a Unix socket, else a socket in
    a private (0700) temporary directory named after `preferred` (so that a node agent
    started again finds the socket its Envoys know), returned second for removal."""
    if len(str(preferred)) <= MAX_SOCKET_PATH:
        return preferred, None
    digest = hashlib.blake2b(str(preferred).encode(), digest_size=10).hexdigest()
    private = Path(tempfile.gettempdir()) / f"ami-sds-{os.getuid()}-{digest}"
    private.mkdir(mode=0o700, exist_ok=True)
    if private.stat().st_uid != os.getuid():
        raise OSError(f"{private} belongs to another user")
    os.chmod(private, 0o700)
    return private / "sds.sock", private


class _Stream:
    """One SDS stream: the names Envoy asked for and the version it last got."""

    def __init__(self) -> None:
        self.names: frozenset[str] = frozenset()
        self.asked = False  # nothing goes out before the first request
        self.sent_version = ""
        self.wake = asyncio.Event()


class SdsServer:
    """Serves `Secrets` to Envoy on the Unix socket `path`; `update` from the loop's
    thread. Without secrets yet, requests wait (Envoy keeps the listener warming)."""

    def __init__(
        self, path: Path | str, *, name: str = "sds", expected: Iterable[str] = ()
    ) -> None:
        self.path = Path(path)
        self.name = name
        # Names served later (a gateway's credentials): asked for early, not unknown.
        self._expected = frozenset({DEFAULT, ROOTCA, *expected})
        self._secrets: dict[str, Any] = {}  # name → packed Any
        self._version = 0
        self._streams: set[_Stream] = set()
        self._server: Any = None
        self._nonces = itertools.count(1)
        self.updates = 0  # how many times secrets were set
        self.nacks: list[str] = []  # Envoy's error messages, oldest first

    @property
    def version(self) -> str:
        return str(self._version) if self._version else ""

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("SdsServer already started")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # a socket left by a crashed agent
        server = grpc.aio.server()
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(_Servicer(self), server)
        if server.add_insecure_port(f"unix:{self.path}") == 0:
            raise OSError(f"SDS: cannot listen on {self.path}")
        await server.start()
        # Only this user's processes (its Envoy) may ask for the key.
        os.chmod(self.path, 0o600)
        self._server = server
        log.info("%s: SDS serving on %s", self.name, self.path)

    async def stop(self, grace: float = 0.5) -> None:
        server, self._server = self._server, None
        for stream in list(self._streams):
            stream.wake.set()
        if server is not None:
            await server.stop(grace)
        with contextlib.suppress(OSError):
            self.path.unlink()

    def update(self, secrets: Secrets) -> None:
        """Serve `secrets` from now on; every open stream gets them at once."""
        self.put(secret_protos(secrets))

    def put(self, secrets: Mapping[str, secret_pb2.Secret]) -> None:
        """Serve these named secrets (beside the others) from now on: a gateway's
        credentials."""
        self._secrets.update({name: _pack(s) for name, s in secrets.items()})
        self._version += 1
        self.updates += 1
        for stream in self._streams:
            stream.wake.set()

    # --- for the servicer --------------------------------------------------------------

    def _response(self, names: Iterable[str]) -> discovery_pb2.DiscoveryResponse:
        wanted = sorted(names) or sorted(self._secrets)  # no names: all (wildcard)
        return discovery_pb2.DiscoveryResponse(
            version_info=self.version,
            type_url=SECRET_TYPE,
            nonce=str(next(self._nonces)),
            resources=[self._secrets[n] for n in wanted if n in self._secrets],
        )

    def _on_request(self, stream: _Stream, req: discovery_pb2.DiscoveryRequest) -> None:
        if req.HasField("error_detail"):
            message = req.error_detail.message
            self.nacks.append(message)
            log.warning(
                "%s: Envoy rejected secrets version %s: %s", self.name, req.version_info, message
            )
        names = frozenset(req.resource_names)
        unknown = names - self._expected - set(self._secrets)
        if unknown and names != stream.names:
            log.warning("%s: Envoy asks for unknown secrets %s", self.name, sorted(unknown))
        if names != stream.names or not stream.asked:
            stream.names = names
            stream.asked = True
            stream.sent_version = ""  # a new subscription: send what there is
        stream.wake.set()

    async def _serve(self, context: Any) -> None:
        stream = _Stream()
        self._streams.add(stream)
        reader = asyncio.create_task(self._read(context, stream), name=f"{self.name}-read")
        try:
            while not reader.done() and self._server is not None:
                due = stream.asked and self._version and stream.sent_version != self.version
                if due:
                    stream.sent_version = self.version
                    await context.write(self._response(stream.names))
                stream.wake.clear()
                if not stream.asked or stream.sent_version == self.version or not self._version:
                    await stream.wake.wait()
        finally:
            self._streams.discard(stream)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self, context: Any, stream: _Stream) -> None:
        try:
            while True:
                req = await context.read()
                if req is grpc.aio.EOF:
                    return
                self._on_request(stream, req)
        finally:
            stream.wake.set()


def _pack(message: secret_pb2.Secret) -> Any:
    from google.protobuf import any_pb2

    out = any_pb2.Any()
    out.Pack(message)
    return out


class _Servicer(sds_pb2_grpc.SecretDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, server: SdsServer) -> None:
        self._sds = server

    async def StreamSecrets(self, request_iterator: Any, context: Any) -> None:  # noqa: N802
        await self._sds._serve(context)

    async def FetchSecrets(  # noqa: N802
        self, request: discovery_pb2.DiscoveryRequest, context: Any
    ) -> discovery_pb2.DiscoveryResponse:
        if not self._sds.version:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no certificate yet")
        return self._sds._response(request.resource_names)


def remove_private_dir(directory: Path | None) -> None:
    """Remove the directory `socket_path` made, if it made one."""
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
