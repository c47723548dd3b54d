"""Knative's delivery rules: retries and their backoff, which answers are retried,
what a dead-letter sink gets, and the broker's TTL. Pure.

The backoff schedule. Knative documents `exponential` as `backoffDelay * 2^n` and
`linear` as `backoffDelay * n` for the n-th retry; its code hands the retry library an
attempt number that starts one step lower, and its unit test follows the other
reading. Ami takes the documented one: the n-th retry (n = 1, 2, ...) waits
`delay * 2^n` (exponential) or `delay * n` (linear). With Knative's default (10 retries,
exponential, PT0.2S) the waits are 0.4 s, 0.8 s, ... 204.8 s.
"""

from __future__ import annotations

import base64
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
    return Delivery(
        retry=int(spec.get("retry") or 0),
        policy=spec.get("backoffPolicy") or DEFAULT_POLICY,
        delay_s=iso8601.parse(delay) if delay else DEFAULT_DELAY_S,
        timeout_s=iso8601.parse(timeout) if timeout else DEFAULT_TIMEOUT_S,
        dead_letter=dead_letter,
        format=spec.get("format") or "binary",
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
