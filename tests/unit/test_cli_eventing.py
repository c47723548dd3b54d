"""`ami broker|trigger create` and `ami event send` build what kn would: the YAML of a
Broker or Trigger from flags, an event from its flags."""

from __future__ import annotations

import json

import pytest

from amimesh.cli import eventing
from amimesh.resources import parse_object


def test_trigger_from_flags_validates() -> None:
    obj = eventing.trigger_object(
        "orders", "shop", "default", "ksvc:orders", ["type=order.placed", "region="]
    )
    assert obj["spec"] == {
        "broker": "default",
        "subscriber": {
            "ref": {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "name": "orders",
                "namespace": "shop",
            }
        },
        "filter": {"attributes": {"type": "order.placed", "region": ""}},
    }
    assert parse_object(obj, "flags").ok


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        ("orders", {"apiVersion": "serving.knative.dev/v1", "kind": "Service"}),
        ("svc:orders", {"apiVersion": "v1", "kind": "Service"}),
        ("broker:orders", {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker"}),
    ],
)
def test_sinks(sink: str, expected: dict[str, str]) -> None:
    ref = eventing.sink_of(sink, "default")["ref"]
    assert {k: ref[k] for k in expected} == expected and ref["name"] == "orders"


def test_a_url_sink_and_bad_ones() -> None:
    assert eventing.sink_of("http://x.example/in", "default") == {"uri": "http://x.example/in"}
    with pytest.raises(ValueError, match="--sink takes"):
        eventing.sink_of("deployment:x", "default")
    with pytest.raises(ValueError, match="--filter takes"):
        eventing.trigger_object("t", "default", "b", "x", ["novalue"])


def test_broker_with_a_dead_letter_sink_validates() -> None:
    obj = eventing.broker_object("default", "default", "svc:errors")
    assert obj["spec"]["delivery"]["deadLetterSink"]["ref"]["kind"] == "Service"
    assert parse_object(obj, "flags").ok


def test_event_from_flags() -> None:
    data = eventing.data_of(None, ["item=book", "count=2", "gift=true"])
    assert json.loads(data) == {"item": "book", "count": 2, "gift": True}
    event = eventing.Event("t", "/s", id="1", data=data, extensions={"region": "eu"})
    headers, body = event.binary()
    assert headers == {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "/s",
        "ce-type": "t",
        "ce-region": "eu",
        "content-type": "application/json",
    }
    assert body == data
    with pytest.raises(ValueError, match="not both"):
        eventing.data_of("x", ["a=b"])
