"""Which headers shop services pass on, and who the frontend says the user is."""

from __future__ import annotations

import sys
from pathlib import Path

APPS = Path(__file__).resolve().parents[2] / "examples" / "shop" / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

from frontend.identity import current_user, outgoing_headers  # noqa: E402
from shoplib.propagate import FORWARDED, TRACE_HEADERS, forwarded  # noqa: E402


def test_trace_and_user_headers_are_forwarded_others_are_not() -> None:
    received = [
        ("X-Request-Id", "r1"),
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("tracestate", "a=b"),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ("X-B3-TraceId", "t"),
        ("x-b3-spanid", "s"),
        ("x-b3-parentspanid", "p"),
        ("x-b3-sampled", "1"),
        ("x-b3-flags", "0"),
        ("end-user", "jason"),
        ("Cookie", "user=jason"),
        ("Host", "reviews:9080"),
        ("Content-Length", "0"),
        ("x-request-id", "second value is ignored"),
    ]
    out = forwarded(received)
    assert out["x-request-id"] == "r1"
    assert out["x-b3-traceid"] == "t"
    assert out["cookie"] == "user=jason"
    assert set(out) == {n.lower() for n, _ in received if n.lower() in FORWARDED}
    assert "host" not in out and "content-length" not in out
    assert set(TRACE_HEADERS) >= {"x-request-id", "traceparent", "b3", "x-b3-sampled"}


def test_forwarded_takes_a_mapping() -> None:
    assert forwarded({"B3": "x", "Accept": "y"}) == {"b3": "x"}


def test_current_user_from_query_then_cookie() -> None:
    assert current_user({"u": "jason"}, {"user": "alice"}) == "jason"
    assert current_user({}, {"user": "alice"}) == "alice"
    assert current_user({}, {}) is None
    assert current_user({"u": "bad name!"}, {}) is None
    assert current_user({"u": ""}, {"user": "bob"}) == "bob"


def test_outgoing_headers_set_end_user_and_token_from_the_session() -> None:
    propagated = {"x-request-id": "r1", "end-user": "mallory", "authorization": "Bearer x"}
    out = outgoing_headers(propagated, "jason", "tok")
    assert out == {"x-request-id": "r1", "end-user": "jason", "authorization": "Bearer tok"}
    # A guest sends no end-user, whatever the client claimed.
    assert outgoing_headers(propagated, None, None) == {"x-request-id": "r1"}
