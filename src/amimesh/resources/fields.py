"""Field types shared by every resource kind: strict base model, durations, markers.

Types that carry a `TypeName` in their `Annotated` metadata are named that way in the
generated field reference (`schema_doc`); `NOT_SUPPORTED` and `UnsupportedValues` mark
what Istio or Kubernetes define and Ami does not implement yet.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)

from amimesh.resources import re2

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
NOT_SUPPORTED_MESSAGE = "is not supported by Ami yet"


@dataclass(frozen=True)
class TypeName:
    """How the field reference names a type ("duration", "port", ...)."""

    name: str


@dataclass(frozen=True)
class UnsupportedValues:
    """Enum values the upstream API defines that Ami does not implement yet."""

    values: tuple[str, ...]
    uppercase: bool = False  # read the value case-insensitively

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str) and self.uppercase:
            value = value.upper()
        if isinstance(value, str) and value in self.values:
            raise ValueError(f'"{value}" {NOT_SUPPORTED_MESSAGE}')
        return value


class _NotSupportedMarker:
    def __repr__(self) -> str:
        return "NOT_SUPPORTED"


NOT_SUPPORTED = _NotSupportedMarker()


def show(value: Any) -> str:
    """A value as the user wrote it in YAML: strings quoted, true/false/null, cut short."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, list):
        text = "a list"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# The longest duration Envoy takes (it counts many in milliseconds in an int64:
# about 292 years, where a protobuf Duration would hold 10000).
MAX_DURATION_S = 9_223_372_035


def parse_duration(value: Any) -> float:
    """Parse a duration as Istio accepts it ("1s", "0.5s", "100ms", "1h30m") into seconds,
    at most `MAX_DURATION_S`."""
    problem = f'must be a duration such as "1s", "250ms" or "1m30s", got {show(value)}'
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(problem)
    text = value.strip()
    pos = 0
    total = 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(problem)
    if total > MAX_DURATION_S:
        raise ValueError(f"must be at most {MAX_DURATION_S}s (292 years), got {show(value)}")
    return total


def _at_least_1ms(seconds: float) -> float:
    if seconds < 0.001:
        raise ValueError(f"must be at least 1ms, got {format_duration(seconds)}")
    return seconds


def is_ip(address: str) -> bool:
    """Whether `address` is an IPv4 or IPv6 address (not a host name)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _not_supported(value: Any) -> Any:
    if value is not None:
        raise ValueError(NOT_SUPPORTED_MESSAGE)
    return value


def _check_regex(value: str) -> str:
    if value == "*":
        return value  # Istio's "header is present" in withoutHeaders; checked per kind
    if not value:
        raise ValueError('must not be empty (write ".*" to match anything)')
    problem = re2.problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$")
_PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path"})


def _check_match_header(name: str) -> str:
    if name.startswith("@request.auth.claims"):
        raise ValueError(f"matching on JWT claims ({name}) {NOT_SUPPORTED_MESSAGE}")
    if name in _PSEUDO_HEADERS:
        return name
    if not _TOKEN.match(name):
        raise ValueError(f"{show(name)} is not a valid HTTP header name")
    if name != name.lower():
        raise ValueError(f"header names must be lowercase: write {show(name.lower())}")
    return name


_RETRY_ON = frozenset(
    {
        # x-envoy-retry-on
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "http3-post-connect-failure",
        # x-envoy-retry-grpc-on
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)


def _check_retry_on(value: str) -> str:
    policies = [p.strip() for p in value.split(",")]
    for p in policies:
        if p in _RETRY_ON or (p.isdigit() and len(p) == 3 and 100 <= int(p) <= 599):
            continue
        allowed = ", ".join(sorted(_RETRY_ON))
        raise ValueError(
            f"{show(p)} is not a retry condition; use HTTP status codes (503) or: {allowed}"
        )
    return ",".join(policies)


_IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?=[a-z0-9]))*$")


def _check_port_or_name(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a port number or a port name, got {show(value)}")
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            raise ValueError(f"must be a port number from 1 to 65535, got {value}")
        return value
    if isinstance(value, str):
        if value.isdigit():
            return _check_port_or_name(int(value))
        if len(value) > 15 or not _IANA_SVC_NAME.match(value):
            raise ValueError(
                f"must be a port number or a port name (lowercase letters, digits and '-', "
                f"at most 15 characters), got {show(value)}"
            )
        return value
    raise ValueError(f"must be a port number or a port name, got {show(value)}")


class Strict(BaseModel):
    """Base of every spec model: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=False, populate_by_name=True, defer_build=True
    )


def format_duration(seconds: float) -> str:
    """Seconds as the duration string `parse_duration` reads back ("2s", "250ms")."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    ms = seconds * 1000
    if abs(ms - round(ms)) < 1e-9:
        return f"{round(ms)}ms"
    return f"{seconds:.9f}".rstrip("0") + "s"


# Seconds, parsed from Istio's duration strings (and written back as one).
Duration = Annotated[
    float,
    TypeName("duration"),
    BeforeValidator(parse_duration),
    Field(ge=0),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError(f"must not contain a NUL byte, got {show(value)}")
    return value


def _one_line(value: str) -> str:
    if any(c in value for c in "\x00\r\n"):
        raise ValueError(f"must not contain a line break or NUL, got {show(value)}")
    return value


# A string Envoy puts in a header (a path, an authority, a prefix): no CR, LF or NUL.
OneLine = Annotated[str, AfterValidator(_one_line)]

# A duration Envoy wants greater than zero; at least 1ms, as Istio validates it.
PositiveDuration = Annotated[Duration, AfterValidator(_at_least_1ms)]

# The bounds of Istio's int32 and uint32 fields, which Envoy's fields hold.
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1

# A field that Istio (or Kubernetes) defines but Ami does not implement yet: accepted by
# the schema so that the error says "not supported yet" instead of "unknown field".
NotSupported = Annotated[Any, NOT_SUPPORTED, AfterValidator(_not_supported)]

Port = Annotated[int, TypeName("port"), Field(ge=1, le=65535)]

# A port number or an IANA service name (a Kubernetes targetPort, a probe's port).
PortOrName = Annotated[
    int | str, TypeName("port or port name"), BeforeValidator(_check_port_or_name)
]

# A regular expression in RE2 syntax, as Envoy evaluates it.
RE2Regex = Annotated[str, TypeName("RE2 regex"), AfterValidator(_check_regex)]

# A request header name to match on: lowercase, as Istio documents it.
MatchHeaderName = Annotated[str, TypeName("header name"), AfterValidator(_check_match_header)]

# Envoy retry conditions, comma-separated; normalized without spaces.
RetryOn = Annotated[str, TypeName("retry conditions"), AfterValidator(_check_retry_on)]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
