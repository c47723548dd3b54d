"""Knative's delivery rules: backoff schedules, what is retried, the dead-letter
extensions, the broker's TTL."""

from __future__ import annotations

import base64

import pytest

from amimesh.eventing import delivery as d


def test_knative_default_is_ten_exponential_retries_from_200ms() -> None:
    default = d.resolve(None)
    assert (default.retry, default.policy, default.delay_s) == (10, "exponential", 0.2)
    assert default.attempts == 11
    waits = d.schedule(default)
    assert len(waits) == 10
    # The documented reading: the n-th retry waits delay * 2^n.
    assert waits[:4] == pytest.approx([0.4, 0.8, 1.6, 3.2])
    assert waits[-1] == pytest.approx(0.2 * 2**10)


def test_linear_waits_delay_times_n() -> None:
    spec = {"retry": 4, "backoffPolicy": "linear", "backoffDelay": "PT0.5S"}
    assert d.schedule(d.resolve(spec)) == pytest.approx([0.5, 1.0, 1.5, 2.0])


def test_exponential_from_a_written_delay() -> None:
    spec = {"retry": 3, "backoffPolicy": "exponential", "backoffDelay": "PT1S"}
    assert d.schedule(d.resolve(spec)) == pytest.approx([2.0, 4.0, 8.0])


def test_a_written_delivery_without_retry_retries_nothing() -> None:
    got = d.resolve({"backoffDelay": "PT1S"}, dead_letter="http://dls/")
    assert got.retry == 0 and got.attempts == 1 and got.dead_letter == "http://dls/"
    assert d.schedule(got) == []


def test_timeout_is_read() -> None:
    assert d.resolve({"timeout": "PT2S"}).timeout_s == 2.0
    assert d.resolve(None).timeout_s == d.DEFAULT_TIMEOUT_S


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        (None, True),
        (500, True),
        (502, True),
        (503, True),
        (404, True),
        (408, True),
        (409, True),
        (429, True),
        (400, False),
        (401, False),
        (403, False),
        (410, False),
        (413, False),
        (302, False),
        (200, False),
    ],
)
def test_retried_answers(status: int | None, retried: bool) -> None:
    assert d.retryable(status) is retried


def test_error_extensions() -> None:
    ext = d.error_extensions("http://sub.default.svc.cluster.local", 500, b"boom")
    assert ext == {
        "knativeerrordest": "http://sub.default.svc.cluster.local",
        "knativeerrorcode": "500",
        "knativeerrordata": base64.b64encode(b"boom").decode(),
    }


def test_error_data_is_cut_to_1024_characters() -> None:
    ext = d.error_extensions("http://x/", 503, b"x" * 5000)
    assert len(ext["knativeerrordata"]) == 1024
    assert ext["knativeerrordata"] == base64.b64encode(b"x" * 5000).decode()[:1024]


def test_no_response_has_no_code_nor_data() -> None:
    assert d.error_extensions("http://x/", None, b"") == {"knativeerrordest": "http://x/"}


@pytest.mark.parametrize(
    ("value", "ttl"),
    [(None, 255), ("255", 254), (10, 9), ("1", 0), ("0", 0), ("-3", 0), ("junk", 255)],
)
def test_ingress_ttl(value: object, ttl: int) -> None:
    assert d.ingress_ttl(value) == ttl


def test_a_reply_loop_ends() -> None:
    ttl: object = None
    hops = 0
    while True:
        ttl = d.ingress_ttl(ttl)
        if ttl == 0:
            break
        hops += 1
    assert hops == 255
