"""Which request headers a service copies onto every call it makes while serving a request.

Envoy makes the spans, but only the app can tie an outgoing call to the request that
caused it: each service forwards the trace context it received. `end-user`, `cookie`
and `authorization` travel too, so that routing rules (`end-user: jason`) and JWT
checks further down the chain see the same user.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

TRACE_HEADERS = (
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
)
USER_HEADERS = ("end-user", "cookie", "authorization")
FORWARDED = TRACE_HEADERS + USER_HEADERS


def forwarded(
    received: Mapping[str, str] | Iterable[tuple[str, str]],
    names: Iterable[str] = FORWARDED,
) -> dict[str, str]:
    """The headers of `received` named in `names`, keys lowercased, first value kept."""
    wanted = {n.lower() for n in names}
    items = received.items() if isinstance(received, Mapping) else received
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        if key in wanted and key not in out:
            out[key] = value
    return out
