"""A message's delivery count read from its ack subject, as nats-py reads it."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from amimesh.eventing import jetstream


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.KNB_a_b.t.3.10.9.1700000000000000000.0",  # without a domain
        "$JS.ACK._.ACC.KNB_a_b.t.4.10.9.1700000000000000000.0.tok",  # with one
        "$JS.ACK.hub.ACC.KNB_a_b.t.11.10.9.1700000000000000000.5.tok.more",
        "$JS.ACK._.ACC.KNB_a_b.t.1.10.9.1700000000000000000.0",  # 11 tokens
    ],
)
def test_delivered_as_nats_reads_it(reply: str) -> None:
    msg = Msg(_client=None, subject="s", reply=reply, data=b"")  # type: ignore[arg-type]
    assert jetstream.delivered(msg) == msg.metadata.num_delivered


def test_not_a_jetstream_message() -> None:
    msg = Msg(_client=None, subject="s", reply="_INBOX.x", data=b"")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="(?i)not.*js|jetstream"):
        jetstream.delivered(msg)
