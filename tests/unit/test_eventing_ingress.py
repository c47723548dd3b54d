"""The broker's ingress in process on its own HTTP server (`http1_server`), its store a
fake: what it answers and what it stores, over real connections."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from cloudevents.core.base import BaseCloudEvent

from amimesh.eventing import events, http1_server
from amimesh.eventing.config import BrokerConfig, BrokerEntry
from amimesh.eventing.ingress import MAX_BODY_BYTES, Ingress

BINARY = {
    "ce-id": "1",
    "ce-source": "/tests",
    "ce-type": "t",
    "ce-specversion": "1.0",
    "content-type": "application/json",
}


class Store:
    def __init__(self) -> None:
        self.events: list[tuple[BrokerEntry, BaseCloudEvent]] = []
        self.fail = False

    async def publish(self, broker: BrokerEntry, event: BaseCloudEvent) -> None:
        if self.fail:
            raise ConnectionError("no server")
        self.events.append((broker, event))


@pytest.fixture
def store() -> Store:
    return Store()


class Answer:
    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body

    async def text(self) -> str:
        return self.body


class Client:
    """Requests to the ingress's server, each answer read whole."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def request(self, method: str, path: str, **kwargs: object) -> Answer:
        async with self.session.request(method, path, **kwargs) as resp:  # type: ignore[arg-type]
            return Answer(resp.status, await resp.text())

    async def post(self, path: str, **kwargs: object) -> Answer:
        return await self.request("POST", path, **kwargs)

    async def get(self, path: str, **kwargs: object) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def put(self, path: str, **kwargs: object) -> Answer:
        return await self.request("PUT", path, **kwargs)


@pytest.fixture
async def client(store: Store) -> AsyncIterator[Client]:
    ingress = Ingress(
        BrokerConfig(
            brokers=(BrokerEntry("default", "default"), BrokerEntry("default", "ch", "channel"))
        ),
        store.publish,
    )
    ingress.ready = True
    server = await http1_server.serve(ingress.handle, "127.0.0.1", 0, MAX_BODY_BYTES)
    port = server.port
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
        yield Client(session)
    await server.close()


async def test_binary_event_stored_with_a_ttl(client: Client, store: Store) -> None:
    resp = await client.post(
        "/default/default", headers=BINARY | {"ce-myext": "v"}, data=b'{"a": 1}'
    )
    assert resp.status == 202
    ((broker, event),) = store.events
    assert broker.stream == "KNB_default_default"
    assert events.attributes_of(event)["myext"] == "v"
    # Binary mode: an attribute is a header, its value a string.
    assert event.get_extension("knativebrokerttl") == "255"
    assert event.get_data() == {"a": 1}
    # As stored and read back.
    again = events.from_bytes(events.to_bytes(event))
    assert events.attributes_of(again)["knativebrokerttl"] == "255"


async def test_a_ttl_is_one_less_than_sent(client: Client, store: Store) -> None:
    sent = BINARY | {"ce-knativebrokerttl": "7"}
    assert (await client.post("/default/default", headers=sent, data=b"{}")).status == 202
    item = {"specversion": "1.0", "id": "s", "source": "/s", "type": "t", "knativebrokerttl": 3}
    structured = {"content-type": "application/cloudevents+json"}
    resp = await client.post("/default/default", headers=structured, data=json.dumps(item))
    assert resp.status == 202
    binary, structured_event = (e for _, e in store.events)
    assert binary.get_extension("knativebrokerttl") == "6"
    assert structured_event.get_extension("knativebrokerttl") == 2
    # A channel keeps none.
    assert (await client.post("/channels/default/ch", headers=BINARY, data=b"{}")).status == 202
    assert store.events[-1][1].get_extension("knativebrokerttl") is None


async def test_structured_and_03(client: Client, store: Store) -> None:
    body = {"specversion": "0.3", "id": "2", "source": "/s", "type": "t", "data": "hi"}
    resp = await client.post(
        "/default/default",
        headers={"content-type": "application/cloudevents+json"},
        data=json.dumps(body),
    )
    assert resp.status == 202
    assert store.events[0][1].get_specversion() == "0.3"


async def test_batch(client: Client, store: Store) -> None:
    batch = [{"specversion": "1.0", "id": str(i), "source": "/s", "type": "t"} for i in range(3)]
    resp = await client.post(
        "/default/default",
        headers={"content-type": "application/cloudevents-batch+json"},
        data=json.dumps(batch),
    )
    assert resp.status == 202
    assert [e.get_id() for _, e in store.events] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        (
            {k: v for k, v in BINARY.items() if k != "ce-id"},
            b"{}",
            "missing required attribute(s): id",
        ),
        (BINARY | {"ce-specversion": "2.0"}, b"{}", 'specversion "2.0" is not supported'),
        (BINARY | {"ce-Bad_Name": "x"}, b"{}", "bad_name"),
        ({"content-type": "application/cloudevents+json"}, b"{nope", "the body is not JSON"),
        ({"content-type": "text/plain"}, b"hello", "not a CloudEvent"),
        (
            {"content-type": "application/cloudevents-batch+json"},
            b'[{"id": "1"}]',
            "event 0: missing required attribute(s): source, type, specversion",
        ),
        (BINARY | {"ce-knativebrokerttl": "1"}, b"{}", "its TTL is spent"),
    ],
)
async def test_invalid_events_get_400_and_why(
    client: Client,
    store: Store,
    headers: dict[str, str],
    body: bytes,
    reason: str,
) -> None:
    resp = await client.post("/default/default", headers=headers, data=body)
    assert resp.status == 400
    assert reason in await resp.text()
    assert store.events == []


async def test_other_answers(client: Client, store: Store) -> None:
    assert (await client.get("/default/default")).status == 405
    assert (await client.put("/default/default", data=b"{}")).status == 405
    assert (await client.post("/default/other", headers=BINARY, data=b"{}")).status == 404
    big = await client.post(
        "/default/default", headers=BINARY, data=io.BytesIO(b"x" * (MAX_BODY_BYTES + 1))
    )
    assert big.status == 413
    store.fail = True
    assert (await client.post("/default/default", headers=BINARY, data=b"{}")).status == 503


async def test_a_body_of_many_chunks_is_read_whole(client: Client, store: Store) -> None:
    data = json.dumps({"blob": "x" * 300_000}).encode()
    resp = await client.post("/default/default", headers=BINARY, data=io.BytesIO(data))
    assert resp.status == 202
    assert store.events[0][1].get_data() == {"blob": "x" * 300_000}


async def test_a_chunked_body_over_the_limit(client: Client, store: Store) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 65536

    resp = await client.post("/default/default", headers=BINARY, data=chunks())
    assert resp.status == 413 and store.events == []
