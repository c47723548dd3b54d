"""One trigger's dispatcher over a fake JetStream message and real HTTP subscribers in
process: what it acknowledges, retries (with which delay), dead-letters and replies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.v1.event import CloudEvent

from amimesh.eventing import delivery as rules
from amimesh.eventing import events, http1
from amimesh.eventing.config import BrokerEntry, TriggerEntry
from amimesh.eventing.dispatcher import TriggerDispatcher


@dataclass
class Meta:
    num_delivered: int


@dataclass
class FakeMsg:
    data: bytes
    metadata: Meta
    acked: bool = False
    reply: str = ""

    def __post_init__(self) -> None:
        # As the server writes it: domain, account, stream, consumer, deliveries, ...
        n = self.metadata.num_delivered
        self.reply = f"$JS.ACK._.ACC.KNB_default_default.t.{n}.7.7.1700000000000000000.0.x"

    naks: list[float | None] = field(default_factory=list)

    async def ack(self) -> None:
        self.acked = True

    async def nak(self, delay: float | None = None) -> None:
        self.naks.append(delay)

    async def term(self) -> None:
        self.acked = True

    async def in_progress(self) -> None:
        pass


@dataclass
class Subscriber:
    """Answers each POST with the next of `answers`: (status, headers, body)."""

    answers: list[tuple[int, dict[str, str], bytes]]
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        status, headers, body = self.answers.pop(0) if self.answers else (202, {}, b"")
        return web.Response(status=status, headers=headers, body=body)


@dataclass
class World:
    subscriber: Subscriber
    dls: Subscriber
    base: str
    session: http1.Client
    published: list[BaseCloudEvent] = field(default_factory=list)

    def dispatcher(self, **delivery: Any) -> TriggerDispatcher:
        d = rules.Delivery(**{"retry": 2, "delay_s": 0.5, "policy": "linear", **delivery})
        trigger = TriggerEntry(
            "default",
            "t",
            "default",
            f"{self.base}/sub",
            d,
            attributes={"type": "order.placed"},
        )

        async def publish(broker: BrokerEntry, event: BaseCloudEvent) -> None:
            self.published.append(event)

        return TriggerDispatcher(
            None,  # type: ignore[arg-type]  # JetStream is not used by `handle`
            BrokerEntry("default", "default"),
            trigger,
            self.session,
            publish,
        )


@pytest.fixture
async def world() -> AsyncIterator[World]:
    sub, dls = Subscriber([]), Subscriber([])
    app = web.Application()
    app.router.add_post("/sub", sub.handle)
    app.router.add_post("/dls", dls.handle)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        client = http1.Client(session)
        yield World(sub, dls, str(server.make_url("")).rstrip("/"), client)
        await client.close()


def stored(type_: str = "order.placed", ttl: int = 255) -> bytes:
    event = CloudEvent(
        attributes={
            "id": "e-1",
            "source": "/s",
            "type": type_,
            "datacontenttype": "application/json",
            "knativebrokerttl": ttl,
        },
        data={"n": 1},
    )
    return events.to_bytes(event)


def msg(attempt: int = 1, **kw: Any) -> FakeMsg:
    return FakeMsg(stored(**kw), Meta(attempt))


async def test_delivered_without_the_ttl(world: World) -> None:
    m = msg()
    await world.dispatcher().handle(m)
    assert m.acked and not m.naks
    ((headers, body),) = world.subscriber.got
    assert headers["ce-id"] == "e-1" and headers["prefer"] == "reply"
    assert "ce-knativebrokerttl" not in headers
    assert body == b'{"n": 1}'


async def test_filtered_out_is_acknowledged_unsent(world: World) -> None:
    m = msg(type_="order.cancelled")
    await world.dispatcher().handle(m)
    assert m.acked and world.subscriber.got == []


async def test_retryable_answers_are_naked_with_the_backoff(world: World) -> None:
    world.subscriber.answers = [(503, {}, b""), (429, {}, b"")]
    first, second = msg(1), msg(2)
    d = world.dispatcher()
    await d.handle(first)
    await d.handle(second)
    assert first.naks == [0.5] and second.naks == [1.0]  # linear: delay x n
    assert not first.acked and not second.acked


async def test_a_retry_after_header_lengthens_the_wait_up_to_retry_after_max(
    world: World,
) -> None:
    world.subscriber.answers = [(503, {"Retry-After": "3"}, b""), (429, {"Retry-After": "60"}, b"")]
    first, second = msg(1), msg(1)
    d = world.dispatcher(retry_after_max_s=10.0)
    await d.handle(first)
    await d.handle(second)
    assert first.naks == [3.0] and second.naks == [10.0]
    # Without retryAfterMax, the backoff alone.
    world.subscriber.answers = [(503, {"Retry-After": "3"}, b"")]
    third = msg(1)
    await world.dispatcher().handle(third)
    assert third.naks == [0.5]


async def test_spent_retries_go_to_the_dead_letter_sink(world: World) -> None:
    world.subscriber.answers = [(500, {}, b"boom")]
    m = msg(3)  # the last of 1 + 2 retries
    await world.dispatcher(dead_letter=f"{world.base}/dls").handle(m)
    assert m.acked
    ((headers, body),) = world.dls.got
    assert headers["ce-knativeerrordest"] == f"{world.base}/sub"
    assert headers["ce-knativeerrorcode"] == "500"
    assert headers["ce-knativeerrordata"] == "Ym9vbQ=="
    assert "ce-knativebrokerttl" not in headers
    assert body == b'{"n": 1}'


async def test_not_retried_answers_go_to_the_sink_at_once(world: World) -> None:
    world.subscriber.answers = [(400, {}, b"bad")]
    m = msg(1)
    await world.dispatcher(dead_letter=f"{world.base}/dls").handle(m)
    assert m.acked and len(world.dls.got) == 1 and len(world.subscriber.got) == 1


async def test_attempts_spent_before_a_restart_are_not_sent_again(world: World) -> None:
    m = msg(4)
    await world.dispatcher(dead_letter=f"{world.base}/dls").handle(m)
    assert m.acked and world.subscriber.got == []
    assert "ce-knativeerrorcode" not in world.dls.got[0][0]  # no response known


async def test_a_failing_dead_letter_sink_is_tried_again(world: World) -> None:
    world.subscriber.answers = [(500, {}, b"")]
    world.dls.answers = [(503, {}, b"")]
    m = msg(3)
    await world.dispatcher(dead_letter=f"{world.base}/dls").handle(m)
    assert not m.acked and m.naks == [1.0]


async def test_without_a_sink_the_event_is_dropped(world: World) -> None:
    world.subscriber.answers = [(500, {}, b"")]
    m = msg(3)
    await world.dispatcher().handle(m)
    assert m.acked and world.dls.got == []


REPLY = {
    "ce-id": "r-1",
    "ce-source": "/replier",
    "ce-type": "answer",
    "ce-specversion": "1.0",
    "content-type": "application/json",
}


async def test_a_reply_goes_back_with_the_ttl_less_one(world: World) -> None:
    world.subscriber.answers = [(200, REPLY, b'{"ok": true}')]
    m = msg()
    await world.dispatcher().handle(m)
    assert m.acked
    (reply,) = world.published
    assert reply.get_id() == "r-1" and reply.get_extension("knativebrokerttl") == 254


async def test_a_reply_with_its_ttl_spent_is_dropped(world: World) -> None:
    world.subscriber.answers = [(200, REPLY, b"{}")]
    m = msg(ttl=1)
    await world.dispatcher().handle(m)
    assert m.acked and world.published == []


async def test_a_reply_that_is_not_an_event_is_an_error(world: World) -> None:
    world.subscriber.answers = [(200, {"content-type": "text/plain"}, b"thanks")]
    m = msg()
    await world.dispatcher(dead_letter=f"{world.base}/dls").handle(m)
    assert m.acked and world.published == []
    assert world.dls.got[0][0]["ce-knativeerrorcode"] == "200"


async def test_a_reply_over_the_limit_is_an_error(world: World) -> None:
    world.subscriber.answers = [(200, REPLY, b"x" * (2 << 20))]
    m = msg()
    await world.dispatcher(dead_letter=f"{world.base}/dls").handle(m)
    assert m.acked and world.published == []
    assert len(world.dls.got) == 1


def test_the_proxy_is_the_environments_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:15001")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,::1,.internal")
    http1._environment_proxies.cache_clear()
    http1.proxy_for.cache_clear()
    try:
        assert http1.proxy_for("http://sink.default.svc.cluster.local/x") == (
            "http://127.0.0.1:15001"
        )
        assert http1.proxy_for("http://127.0.0.1:8080/") is None
        assert http1.proxy_for("http://[::1]:8080/") is None
        assert http1.proxy_for("http://a.b.internal/") is None
        assert http1.proxy_for("https://sink/") is None  # no HTTPS_PROXY
    finally:
        http1._environment_proxies.cache_clear()
        http1.proxy_for.cache_clear()
