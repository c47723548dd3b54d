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


NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def test_retry_after_is_read_only_with_retry_after_max() -> None:
    plain = d.resolve({"retry": 3, "backoffPolicy": "linear", "backoffDelay": "PT1S"})
    assert plain.retry_after_max_s is None
    # Without retryAfterMax the header changes nothing (Knative's opt-in).
    assert d.retry_wait(plain, 1, 503, "30", NOW) == 1.0
    capped = d.resolve(
        {"retry": 3, "backoffPolicy": "linear", "backoffDelay": "PT1S", "retryAfterMax": "PT10S"}
    )
    assert capped.retry_after_max_s == 10.0
    assert d.retry_wait(capped, 1, 503, "5", NOW) == 5.0  # longer than the backoff
    assert d.retry_wait(capped, 1, 429, "30", NOW) == 10.0  # capped
    assert d.retry_wait(capped, 3, 429, "2", NOW) == 3.0  # the backoff is longer
    assert d.retry_wait(capped, 1, 500, "30", NOW) == 1.0  # only 429 and 503
    assert d.retry_wait(capped, 1, 503, None, NOW) == 1.0
    # PT0S: read, and capped at nothing.
    zero = d.resolve({"retry": 1, "backoffDelay": "PT0.2S", "retryAfterMax": "PT0S"})
    assert zero.retry_after_max_s == 0.0
    assert d.retry_wait(zero, 1, 503, "30", NOW) == d.backoff(zero, 1)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("1.5", 0.0),
        ("soon", 0.0),
        ("", 0.0),
        ("9" * 100, 0.0),
        ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0),  # IMF-fixdate
        ("Tuesday, 14-Nov-23 22:15:20 GMT", 120.0),  # RFC 850
        ("Tue Nov 14 22:13:50 2023", 30.0),  # asctime, GMT
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # past
    ],
)
def test_retry_after_header_forms(header: str, seconds: float) -> None:
    assert d.retry_after_s(header, NOW) == pytest.approx(seconds)


def test_a_delivery_with_retry_after_max_survives_its_encoding() -> None:
    written = d.resolve({"retry": 2, "retryAfterMax": "PT1M"})
    assert d.Delivery.from_json(written.to_json()) == written
    assert d.Delivery.from_json({"retry": 2}).retry_after_max_s is None  # written before
