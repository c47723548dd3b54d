"""When to renew a certificate (pure): at half its remaining life, a little earlier
by a random jitter, so that many workloads started together do not renew together."""

from __future__ import annotations

RENEW_FRACTION = 0.5
JITTER_FRACTION = 0.1
# Retry a failed renewal soon, doubling up to this, but never past the expiry.
RETRY_MIN_S = 0.2
RETRY_MAX_S = 30.0


def renew_after(
    remaining_s: float,
    rand: float,
    *,
    fraction: float = RENEW_FRACTION,
    jitter: float = JITTER_FRACTION,
) -> float:
    """Seconds from now until renewal, for a certificate with `remaining_s` of life
    left. `rand` in [0, 1) takes up to `jitter` of the life off the `fraction`."""
    if remaining_s <= 0:
        return 0.0
    return max(0.0, remaining_s * (fraction - jitter * rand))


def retry_after(attempt: int, remaining_s: float) -> float:
    """Seconds before retry number `attempt` (1, 2, ...) of a failed renewal."""
    delay: float = min(RETRY_MAX_S, RETRY_MIN_S * 2.0 ** max(0, attempt - 1))
    if remaining_s > 0:
        delay = min(delay, max(RETRY_MIN_S, remaining_s / 4))
    return delay
