"""Field types shared by every resource kind: strict base model, durations, markers."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

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


def parse_duration(value: Any) -> float:
    """Parse a duration as Istio accepts it ("1s", "0.5s", "100ms", "1h30m") into seconds."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f'must be a duration string such as "1s" or "250ms", not {value!r}')
    text = value.strip()
    pos = 0
    total = 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f'must be a duration string such as "1s" or "250ms", not {value!r}')
    return total


def _not_supported(value: Any) -> Any:
    if value is not None:
        raise ValueError("is not supported by Ami yet")
    return value


class Strict(BaseModel):
    """Base of every spec model: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, populate_by_name=True)


# Seconds, parsed from Istio's duration strings.
Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]

# A field that Istio (or Kubernetes) defines but Ami does not implement yet: accepted by
# the schema so that the error says "not supported yet" instead of "unknown field".
NotSupported = Annotated[Any, AfterValidator(_not_supported)]

Port = Annotated[int, Field(ge=1, le=65535)]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
