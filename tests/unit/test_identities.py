"""The node agent's identities: one key per SPIFFE ID, shared, renewed, dropped."""

from __future__ import annotations

import asyncio
import datetime

from amimesh.agent.identities import Identities
from amimesh.agent.sds import Secrets
from amimesh.identity import pem
from amimesh.identity.ca import CertificateAuthority
from amimesh.identity.issued import Issued
from amimesh.identity.service import IdentityService

WEB = "spiffe://cluster.local/ns/default/sa/web"
API = "spiffe://cluster.local/ns/default/sa/api"


class Ca:
    """The real CA behind a node token, counting what it signs."""

    def __init__(self, ttl_s: float = 3600) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.service = IdentityService(
            CertificateAuthority.self_signed(now=now), ttl=datetime.timedelta(seconds=ttl_s)
        )
        self.token = self.service.grant_node()
        self.signed: list[str] = []

    async def sign(self, csr_pem: str) -> Issued:
        await asyncio.sleep(0.01)
        issued = self.service.sign(self.token, csr_pem)
        self.signed.append(issued.spiffe_id)
        return issued


def ignore(secrets: Secrets, issued: Issued) -> None:
    pass


async def test_instances_of_one_identity_share_its_key() -> None:
    ca = Ca()
    ids = Identities(ca.sign)
    try:
        (a, _, _), (b, _, _), (c, _, _) = await asyncio.gather(
            ids.acquire(WEB, ignore), ids.acquire(WEB, ignore), ids.acquire(API, ignore)
        )
        assert a == b and a.private_key != c.private_key
        assert sorted(ca.signed) == [API, WEB]  # one signing per identity
        (leaf, *_) = pem.load_certificates(a.certificate_chain.encode())
        assert pem.uri_sans(leaf) == [WEB]
    finally:
        await ids.close()


async def test_renewals_reach_every_subscriber_and_the_last_one_out_drops_it() -> None:
    ca = Ca(ttl_s=1.0)  # renewed about every half second
    ids = Identities(ca.sign)
    try:
        seen: list[Secrets] = []
        renewed = asyncio.Event()

        def on_other(secrets: Secrets, _issued: Issued) -> None:
            seen.append(secrets)
            renewed.set()

        first, _, stop = await ids.acquire(WEB, ignore)
        same, _, stop_other = await ids.acquire(WEB, on_other)
        assert same == first
        await asyncio.wait_for(renewed.wait(), 10)
        assert seen[0].private_key != first.private_key
        stop()
        stop_other()
        renewed = len(ca.signed)
        await asyncio.sleep(1.2)
        assert len(ca.signed) == renewed  # nobody runs as it any more: no renewal
    finally:
        await ids.close()


async def test_an_identity_is_held_while_a_holder_waits_for_its_first_certificate() -> None:
    ca = Ca()
    ids = Identities(ca.sign)
    try:
        waiting = asyncio.create_task(ids.acquire(WEB, ignore))
        await asyncio.sleep(0)  # the first holder waits for the CA
        _, _, release = await ids.acquire(WEB, ignore)  # a job that starts and ends
        release()
        secrets, _, _ = await asyncio.wait_for(waiting, 10)  # not cancelled by that
        assert ca.signed == [WEB]
    finally:
        await ids.close()
