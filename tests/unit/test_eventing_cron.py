"""PingSource schedules: cron's fields, Ami's seconds field, time zones, and the
PingSource's event."""

from __future__ import annotations

import base64
import datetime as dt
import zoneinfo

import pytest

from amimesh.eventing import ping
from amimesh.eventing.config import PingEntry
from amimesh.resources import cron

UTC = dt.UTC
T = dt.datetime(2026, 12, 7, 0, 29, 30, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("* * * * *", dt.datetime(2026, 12, 7, 0, 30, tzinfo=UTC)),
        ("* * * * * *", dt.datetime(2026, 12, 7, 0, 29, 31, tzinfo=UTC)),
        ("*/20 * * * * *", dt.datetime(2026, 12, 7, 0, 29, 40, tzinfo=UTC)),
        ("*/15 * * * *", dt.datetime(2026, 12, 7, 0, 30, tzinfo=UTC)),
        ("0 9 * * mon-fri", dt.datetime(2026, 12, 7, 9, 0, tzinfo=UTC)),
        ("0 9 * * SAT,sun", dt.datetime(2026, 12, 12, 9, 0, tzinfo=UTC)),
        ("0 0 * * 7", dt.datetime(2026, 12, 13, 0, 0, tzinfo=UTC)),
        ("@hourly", dt.datetime(2026, 12, 7, 1, 0, tzinfo=UTC)),
        ("@daily", dt.datetime(2026, 12, 8, 0, 0, tzinfo=UTC)),
        ("@yearly", dt.datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("0 0 29 2 *", dt.datetime(2028, 2, 29, 0, 0, tzinfo=UTC)),
        # Both day fields restricted: either one fires (Friday the 11th comes first).
        ("0 0 13 * fri", dt.datetime(2026, 12, 11, 0, 0, tzinfo=UTC)),
        ("15 10 * jan,jul *", dt.datetime(2027, 1, 1, 10, 15, tzinfo=UTC)),
        ("5-10/5 2 * * *", dt.datetime(2026, 12, 7, 2, 5, tzinfo=UTC)),
        ("30/10 * * * *", dt.datetime(2026, 12, 7, 0, 30, tzinfo=UTC)),
    ],
)
def test_next_after(schedule: str, expected: dt.datetime) -> None:
    assert cron.parse(schedule).next_after(T) == expected


def test_a_time_zone() -> None:
    schedule = cron.parse("CRON_TZ=Europe/Paris 0 9 * * *")
    assert schedule.timezone == "Europe/Paris"
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    fire = schedule.next_after(T.astimezone(paris))
    assert fire is not None and fire.astimezone(UTC) == dt.datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def test_never() -> None:
    assert cron.parse("0 0 31 2 *").next_after(T) is None


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("every minute", "has 2 fields"),
        ("61 * * * *", "the minute must be from 0 to 59"),
        ("* * * 13 *", "the month must be from 1 to 12"),
        ("*/0 * * * *", "step must be at least 1"),
        ("L * * * *", "reads numbers"),
        ("5-2 * * * *", "must be from 0 to 59"),
        ("CRON_TZ= * * * * *", "needs a time zone"),
    ],
)
def test_refused(schedule: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        cron.parse(schedule)


def test_the_ping_event() -> None:
    entry = PingEntry(
        "default",
        "beat",
        "* * * * *",
        "",
        "http://sink/",
        content_type="application/json",
        data='{"hello": "world"}',
        extensions={"team": "shop"},
    )
    event = ping.event_for(entry, T)
    attrs = event.get_attributes()
    assert attrs["type"] == "dev.knative.sources.ping"
    assert attrs["source"] == "/apis/v1/namespaces/default/pingsources/beat"
    assert attrs["time"] == T and attrs["team"] == "shop"
    assert attrs["datacontenttype"] == "application/json"
    assert event.get_data() == '{"hello": "world"}'
    binary = PingEntry(
        "default",
        "b",
        "* * * * *",
        "",
        "http://s/",
        data_base64=base64.b64encode(b"\x00\x01").decode(),
    )
    assert ping.event_for(binary, T).get_data() == b"\x00\x01"
