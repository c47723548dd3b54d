"""Knative's delivery rules: retries and their backoff, which answers are retried,
what a dead-letter sink gets, and the broker's TTL. Pure.

The backoff schedule. Knative documents `exponential` as `backoffDelay * 2^n` and
`linear` as `backoffDelay * n` for the n-th retry; its code hands the retry library an
attempt number that starts one step lower, and its unit test follows the other
reading. Ami takes the documented one: the n-th retry (n = 1, 2, ...) waits
`delay * 2^n` (exponential) or `delay * n` (linear). With Knative's default (10 retries,
exponential, PT0.2S) the waits are 0.4 s, 0.8 s, ... 204.8 s.

`retryAfterMax` (Knative's `delivery-retryafter` feature): when it is set, a 429 or
503 answer's `Retry-After` header (delay-seconds or an HTTP-date) can lengthen the
wait before the next attempt, to at most `retryAfterMax`; the wait is the longer of
that and the backoff. Unset, the header is not read, as in Knative while the feature
is opt-in; `PT0S` reads it and caps it at nothing.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Policy = Literal["linear", "exponential"]

# Knative's broker default (config-br-defaults): 10 retries, exponential, PT0.2S.
DEFAULT_RETRY = 10
DEFAULT_POLICY: Policy = "exponential"
DEFAULT_DELAY_S = 0.2
# An attempt's limit when `timeout` is not set (Knative leaves it to the HTTP client).
DEFAULT_TIMEOUT_S = 60.0
# The longest single wait; a schedule of many exponential retries stops growing here.
MAX_BACKOFF_S = 3600.0

ERROR_DEST = "knativeerrordest"
ERROR_CODE = "knativeerrorcode"
ERROR_DATA = "knativeerrordata"
ERROR_DATA_MAX = 1024

# The answers whose `Retry-After` is read (with `retryAfterMax` set).
RETRY_AFTER_STATUSES = (429, 503)
_RETRY_AFTER_MAX_CHARS = 64  # longer is no delay-seconds nor HTTP-date

TTL = "knativebrokerttl"
DEFAULT_TTL = 255


@dataclass(frozen=True)
class Delivery:
    """A trigger's delivery, resolved: its own, else its broker's, else Knative's."""

    retry: int = DEFAULT_RETRY
    policy: Policy = DEFAULT_POLICY
    delay_s: float = DEFAULT_DELAY_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    dead_letter: str = ""  # a URL; "" for none
    format: Literal["binary", "json"] = "binary"
    retry_after_max_s: float | None = None  # None: `Retry-After` is not read

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Delivery:
        return cls(**data)

    @property
    def attempts(self) -> int:
        """How many times an event is sent at most: the first try and the retries."""
        return self.retry + 1


def resolve(spec: Mapping[str, Any] | None, dead_letter: str = "") -> Delivery:
    """A DeliverySpec (as written, camelCase) made a `Delivery`; None is Knative's
    default. A spec's missing fields take Knative's defaults, except `retry`: a
    delivery written without one retries nothing, as in Knative."""
    if spec is None:
        return Delivery(dead_letter=dead_letter)
    # Here, not at the top: the broker process imports this module but resolves in the
    # control plane, and the parser brings pydantic with it.
    from amimesh.resources import iso8601

    delay = spec.get("backoffDelay")
    timeout = spec.get("timeout")
    retry_after_max = spec.get("retryAfterMax")
    return Delivery(
        retry=int(spec.get("retry") or 0),
        policy=spec.get("backoffPolicy") or DEFAULT_POLICY,
        delay_s=iso8601.parse(delay) if delay else DEFAULT_DELAY_S,
        timeout_s=iso8601.parse(timeout) if timeout else DEFAULT_TIMEOUT_S,
        dead_letter=dead_letter,
        format=spec.get("format") or "binary",
        retry_after_max_s=iso8601.parse(retry_after_max) if retry_after_max else None,
    )


def backoff(delivery: Delivery, retry: int) -> float:
    """Seconds to wait before the `retry`-th retry (1 for the first)."""
    if retry < 1:
        return 0.0
    if delivery.policy == "linear":
        wait = delivery.delay_s * retry
    else:
        wait = delivery.delay_s * 2.0 ** min(retry, 40)
    return min(wait, MAX_BACKOFF_S)


def retry_wait(
    delivery: Delivery, retry: int, status: int | None, retry_after: str | None, now: float
) -> float:
    """Seconds to wait before the `retry`-th retry after an answer of `status` with
    that `Retry-After` header (None: none): the backoff, or what the header asks when
    that is longer, capped at `retryAfterMax` (only with `retryAfterMax` set, and
    only for 429 and 503). `now`: the Unix time, for a header that is a date."""
    wait = backoff(delivery, retry)
    cap = delivery.retry_after_max_s
    if cap is None or status not in RETRY_AFTER_STATUSES or retry_after is None:
        return wait
    return max(wait, min(retry_after_s(retry_after, now), cap, MAX_BACKOFF_S))


def retry_after_s(value: str, now: float) -> float:
    """The seconds a `Retry-After` header asks for: delay-seconds, or an HTTP-date
    (IMF-fixdate, or the obsolete RFC 850 and asctime forms) less `now`; 0 for
    anything else or a time already past (RFC 9110, 10.2.3)."""
    text = value.strip()
    if not text or len(text) > _RETRY_AFTER_MAX_CHARS:
        return 0.0
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0
    if when.tzinfo is None:  # the asctime form: an HTTP-date is always GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(when.timestamp() - now, 0.0)


def schedule(delivery: Delivery) -> list[float]:
    """Every wait, in order: before the first retry, the second, ..."""
    return [backoff(delivery, n) for n in range(1, delivery.retry + 1)]


def retryable(status: int | None) -> bool:
    """Whether an attempt is tried again: no response (None), 5xx, 404, 408, 409, 429
    (Knative's `SelectiveRetry`); not other 4xx, nor 1xx-3xx."""
    if status is None:
        return True
    return status >= 500 or status in (404, 408, 409, 429)


def succeeded(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def error_extensions(destination: str, status: int | None, body: bytes) -> dict[str, str]:
    """What the dead-letter sink's copy of the event carries beside the original's
    attributes: where it failed, the last status (none when there was no response)
    and the response body, base64, cut to 1024 characters."""
    out = {ERROR_DEST: destination}
    if status is not None:
        out[ERROR_CODE] = str(status)
    if body:
        out[ERROR_DATA] = base64.b64encode(body).decode("ascii")[:ERROR_DATA_MAX]
    return out


def ingress_ttl(value: Any) -> int:
    """The TTL an event entering a broker gets, from its `knativebrokerttl` (absent:
    None): Knative's default 255 when absent or not a number, else one less (never
    below 0). An event whose TTL is then 0 is dropped."""
    if value is None:
        return DEFAULT_TTL
    try:
        ttl = int(str(value))
    except ValueError:
        return DEFAULT_TTL
    return max(ttl - 1, 0)
