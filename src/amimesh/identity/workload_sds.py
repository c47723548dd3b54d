"""An app's own workload identity, from the SDS socket its node agent serves it on
(`AMI_SDS_SOCKET`): the certificate, key and trust bundle its sidecar gets, for an
app that opens mutual TLS itself (the broker's deliveries straight to a subscriber's
sidecar).

    identity = WorkloadIdentity(socket_path, name="broker")
    task = asyncio.create_task(identity.run())     # the stream, renewals, reconnects
    identity.context                                # an ssl.SSLContext, or None yet

The stream is SotW SDS, as Envoy speaks it: ask for `default` and `ROOTCA`, take
each response whole, acknowledge it; a renewal comes as a new response. The key goes
into the TLS context through an anonymous in-memory file (`memfd`), never to disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable

import grpc  # type: ignore[import-untyped]
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

log = logging.getLogger(__name__)

CERTIFICATE = "default"
TRUST = "ROOTCA"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
RETRY_S = 1.0
MAX_MESSAGE_BYTES = 1 << 20  # certificates and a trust bundle


def client_context(chain: str, key: str, bundle: str, name: str = "identity") -> ssl.SSLContext:
    """A TLS client context presenting `chain` and `key` and trusting `bundle`'s roots
    (peers are SPIFFE IDs, not host names: no host name check)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=bundle)
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, (chain + "\n" + key).encode())
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return context


def read_secrets(response: discovery_pb2.DiscoveryResponse) -> tuple[str, str, str] | None:
    """(chain, key, bundle) from an SDS response, None when it lacks one of them."""
    chain = key = bundle = ""
    for packed in response.resources:
        secret = secret_pb2.Secret()
        if not packed.Unpack(secret):
            continue
        if secret.name == CERTIFICATE and secret.HasField("tls_certificate"):
            tls = secret.tls_certificate
            chain = tls.certificate_chain.inline_bytes.decode()
            key = tls.private_key.inline_bytes.decode()
        elif secret.name == TRUST and secret.HasField("validation_context"):
            bundle = secret.validation_context.trusted_ca.inline_bytes.decode()
    return (chain, key, bundle) if chain and key and bundle else None


class WorkloadIdentity:
    """The TLS client context of the identity served on `socket_path`, kept current."""

    def __init__(
        self,
        socket_path: str,
        *,
        name: str = "identity",
        on_change: Callable[[ssl.SSLContext], None] | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.name = name
        self.context: ssl.SSLContext | None = None
        self._on_change = on_change
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Follow the SDS stream until cancelled, connecting again when it ends."""
        while True:
            try:
                await self._stream()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the node agent restarting, the socket not there yet
                log.info("%s: SDS stream on %s ended (%s)", self.name, self.socket_path, e)
            await asyncio.sleep(RETRY_S)

    async def _stream(self) -> None:
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        async with grpc.aio.insecure_channel(f"unix:{self.socket_path}", options=options) as ch:
            requests: asyncio.Queue[discovery_pb2.DiscoveryRequest] = asyncio.Queue()
            requests.put_nowait(
                discovery_pb2.DiscoveryRequest(
                    resource_names=[CERTIFICATE, TRUST], type_url=SECRET_TYPE
                )
            )

            async def outgoing() -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
                while True:
                    yield await requests.get()

            stub = sds_pb2_grpc.SecretDiscoveryServiceStub(ch)
            async for response in stub.StreamSecrets(outgoing()):
                found = read_secrets(response)
                ack = discovery_pb2.DiscoveryRequest(
                    resource_names=[CERTIFICATE, TRUST],
                    type_url=SECRET_TYPE,
                    version_info=response.version_info,
                    response_nonce=response.nonce,
                )
                requests.put_nowait(ack)
                if found is None:
                    continue  # not all there yet: the next response completes it
                try:
                    context = client_context(*found, name=self.name)
                except (ssl.SSLError, ValueError, OSError) as e:
                    log.warning("%s: the served identity is not usable: %s", self.name, e)
                    continue
                self.context = context
                self.ready.set()
                if self._on_change is not None:
                    self._on_change(context)
                log.info(
                    "%s: identity from %s (version %s)",
                    self.name,
                    self.socket_path,
                    response.version_info,
                )
