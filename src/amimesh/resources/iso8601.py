"""ISO-8601 durations as Knative's delivery fields take them (`PT0.2S`, `PT1M`, `P1D`).

Knative parses them with a period library that also takes years and months; those have
no fixed length, so Ami refuses them rather than guess one. Pure.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator

from amimesh.resources.fields import TypeName, show

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_DURATION = re.compile(
    rf"P(?:{_NUMBER}W)?(?:{_NUMBER}D)?(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?"
)
_UNITS = (7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0)
# The longest delay or timeout worth keeping (a year); beyond it is a typo.
MAX_SECONDS = 366 * 86400.0


def parse(text: Any) -> float:
    """Seconds in an ISO-8601 duration; ValueError saying why not."""
    problem = f'must be an ISO-8601 duration such as "PT0.2S", "PT10S" or "PT1M", got {show(text)}'
    if not isinstance(text, str):
        raise ValueError(problem)
    m = _DURATION.fullmatch(text.strip().upper())
    if m is None or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        if m is None and re.fullmatch(r"P.*\d+[YM].*", text.strip().upper().split("T")[0]):
            raise ValueError(
                f"years and months have no fixed length; write weeks, days or hours, "
                f"got {show(text)}"
            )
        raise ValueError(problem)
    seconds = sum(
        float(part.replace(",", ".")) * unit
        for part, unit in zip(m.groups(), _UNITS, strict=True)
        if part is not None
    )
    if seconds > MAX_SECONDS:
        raise ValueError(f"must be at most a year, got {show(text)}")
    return seconds


def _check(text: str) -> str:
    parse(text)
    return text


# An ISO-8601 duration kept as written (Knative writes it back unchanged).
IsoDuration = Annotated[str, TypeName("ISO-8601 duration"), AfterValidator(_check)]
