"""The agent's certificate: a key made here, a CSR signed by the control plane's CA,
renewed at half its life (with jitter), served to Envoy by SDS.

    client = CaClient("http://127.0.0.1:40075", token)
    rotator = Rotator(identity, client.sign, on_cert=publish)
    await rotator.renew()        # the first certificate, before Envoy starts
    await rotator.run()          # renews forever (an owned task; cancel to stop)

The key never leaves this process: only the CSR goes to the CA, and only the public
chain is written (`write_public`, for `ami identity`).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from amimesh.agent.http_client import fetch
from amimesh.agent.sds import Secrets
from amimesh.identity import csr as csr_mod
from amimesh.identity import rotation
from amimesh.identity.issued import Issued
from amimesh.identity.spiffe import SpiffeId

log = logging.getLogger(__name__)

CERTIFICATES_PATH = "/api/v1/certificates"
REQUEST_TIMEOUT_S = 10.0

Sign = Callable[[str], Awaitable[Issued]]  # CSR PEM → the signed certificate
OnCert = Callable[[Secrets, Issued], None]
Clock = Callable[[], datetime.datetime]


class CaRefused(RuntimeError):
    """The CA said no (a 4xx): retrying the same request will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"CA refused ({status}): {message}")
        self.status = status


class CaUnavailable(RuntimeError):
    """The CA could not be reached or failed (worth a retry)."""


class CaClient:
    """`POST /api/v1/certificates` with the instance's token (the I/O of signing)."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = REQUEST_TIMEOUT_S):
        self.url = base_url.rstrip("/") + CERTIFICATES_PATH
        self._token = token
        self._timeout_s = timeout_s

    async def sign(
        self, csr_pem: str, *, dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = ()
    ) -> Issued:
        """The signed certificate; server names only for a gateway's token."""
        headers = {"Authorization": f"Bearer {self._token}"}
        body: dict[str, Any] = {"csr": csr_pem}
        if dns_names or ip_addresses:
            body |= {"dns_names": list(dns_names), "ip_addresses": list(ip_addresses)}
        try:
            resp = await fetch(
                self.url, method="POST", json_body=body, headers=headers, timeout_s=self._timeout_s
            )
        except (TimeoutError, OSError) as e:
            raise CaUnavailable(f"{self.url}: {e or type(e).__name__}") from None
        text, status = resp.text(), resp.status
        data = _json_or_none(text)
        if status != 200:
            message = str(data.get("error", text)) if isinstance(data, dict) else text
            if 400 <= status < 500:
                raise CaRefused(status, message.strip())
            raise CaUnavailable(f"{self.url}: {status} {message.strip()}")
        if not isinstance(data, dict):
            raise CaUnavailable(f"{self.url}: the answer is not a JSON object")
        try:
            return Issued.from_json(data)
        except (KeyError, ValueError) as e:
            raise CaUnavailable(f"{self.url}: bad answer: {e}") from None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Rotator:
    """Keeps a fresh certificate for `identity`: each renewal makes a new key."""

    def __init__(
        self,
        identity: SpiffeId,
        sign: Sign,
        *,
        on_cert: OnCert,
        clock: Clock = _utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.identity = identity
        self._sign = sign
        self._on_cert = on_cert
        self._clock = clock
        self._rand = rand
        self.current: Issued | None = None
        self.renewals = 0

    async def renew(self) -> Issued:
        """Get a certificate now (new key, CSR, CA) and hand it on; raises CaRefused or
        CaUnavailable."""
        key = csr_mod.new_key()
        issued = await self._sign(csr_mod.make_csr(key, self.identity))
        if issued.spiffe_id != self.identity.uri:
            raise CaUnavailable(f"the CA issued {issued.spiffe_id}, not {self.identity}")
        self._on_cert(
            Secrets(issued.certificate_chain, csr_mod.key_pem(key), issued.trust_bundle), issued
        )
        self.current = issued
        self.renewals += 1
        log.info(
            "certificate %s serial %s until %s", issued.spiffe_id, issued.serial, issued.not_after
        )
        return issued

    def _remaining_s(self) -> float:
        if self.current is None:
            return 0.0
        return (self.current.not_after - self._clock()).total_seconds()

    async def run(self) -> None:
        """Renew at half life, forever; a failed renewal is retried with backoff while
        the current certificate serves on."""
        attempt = 0
        while True:
            if attempt == 0:
                delay = rotation.renew_after(self._remaining_s(), self._rand())
            else:
                delay = rotation.retry_after(attempt, self._remaining_s())
            await asyncio.sleep(delay)
            try:
                await self.renew()
                attempt = 0
            except (CaRefused, CaUnavailable) as e:
                attempt += 1
                left = self._remaining_s()
                level = logging.ERROR if left <= 0 else logging.WARNING
                log.log(
                    level, "renewing %s failed (%s); %.1fs of life left", self.identity, e, left
                )


async def first_certificate(rotator: Rotator, *, timeout_s: float) -> Issued:
    """The first certificate, retrying an unavailable CA until `timeout_s`; a refusal
    (bad token, wrong identity) is final at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    attempt = 0
    while True:
        try:
            return await rotator.renew()
        except CaUnavailable:
            attempt += 1
            if loop.time() >= deadline:
                raise
            delay = rotation.retry_after(attempt, deadline - loop.time())
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))


def write_public(issued: Issued, cert_file: str, bundle_file: str) -> None:
    """Write the chain and the trust bundle (public, never the key), atomically."""
    for path, text in ((cert_file, issued.certificate_chain), (bundle_file, issued.trust_bundle)):
        if not path:
            continue
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
