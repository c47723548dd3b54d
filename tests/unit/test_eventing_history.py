"""`ami events`: a broker's records folded into one row per event."""

from __future__ import annotations

from amimesh.eventing.history import (
    Delivery,
    Record,
    decode_many,
    encode_many,
    outcome_text,
    summarize,
)


def test_rows_per_event_with_each_trigger_outcome() -> None:
    records = [
        Record("taken", 1.0, "a", "/s", "t"),
        Record("taken", 2.0, "b", "/s", "t"),
        Record(
            "attempt",
            3.0,
            "a",
            "/s",
            "t",
            trigger="one",
            attempt=1,
            status=202,
            outcome="delivered",
        ),
        Record(
            "attempt", 3.1, "b", "/s", "t", trigger="two", attempt=1, status=500, outcome="retrying"
        ),
        Record(
            "attempt", 3.5, "b", "/s", "t", trigger="two", attempt=2, status=500, outcome="retrying"
        ),
        Record(
            "attempt",
            4.0,
            "b",
            "/s",
            "t",
            trigger="two",
            attempt=3,
            status=500,
            outcome="dead-lettered",
        ),
        Record(
            "attempt",
            4.1,
            "a",
            "/s",
            "t",
            trigger="two",
            attempt=1,
            status=None,
            outcome="retrying",
        ),
    ]
    rows = summarize(records)
    assert [r.id for r in rows] == ["a", "b"]
    a, b = rows
    assert outcome_text(a.deliveries["one"]) == "delivered (202)"
    assert outcome_text(a.deliveries["two"]) == "retrying after no response, attempt 1"
    assert outcome_text(b.deliveries["two"]) == "dead-lettered after 3 attempts (500)"
    assert summarize(records, last=1)[0].id == "b"


def test_records_round_trip_and_junk_is_skipped() -> None:
    r = Record(
        "attempt", 5.0, "x", "/s", "t", trigger="one", attempt=2, status=503, outcome="retrying"
    )
    assert Record.decode(r.encode()) == r
    assert Record.decode(b"not json") is None
    assert Record.decode(b'{"kind": "taken", "surprise": 1}') is None


def test_a_message_holds_many_records() -> None:
    a = Record("taken", 1.0, "a", "/s", "t")
    b = Record("attempt", 2.0, "a", "/s", "t", trigger="one", attempt=1, status=202)
    assert encode_many([a, b]).startswith(b'[{"kind":"taken"')  # one JSON array
    assert decode_many(encode_many([a, b])) == [a, b]
    assert decode_many(b'[{"kind": "taken", "surprise": 1}, 7, ' + a.encode() + b"]") == [a]
    assert decode_many(b"[not json") == []
    # As written before: a line each.
    assert decode_many(a.encode()) == [a]
    assert decode_many(a.encode() + b"\nnot json\n" + b.encode()) == [a, b]


def test_delivered_after_retries() -> None:
    d = Delivery("one", attempts=3, status=202, outcome="delivered")
    assert outcome_text(d) == "delivered after 3 attempts (202)"
    once = {"outcome": "dead-lettered", "attempts": 1, "status": 400}
    assert outcome_text(once) == "dead-lettered after 1 attempt (400)"
