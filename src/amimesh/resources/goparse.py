"""Values as Knative reads them from ConfigMaps and annotations (pure).

Knative parses with Go's `strconv` and `time.ParseDuration`, which accept less than
Python's `int()` and `float()` (no surrounding spaces, no `_` between digits) and more
in one place (`1h30m`, `1.5s`, `300ms`). These functions accept what Go accepts, so a
manifest that Knative takes is taken here and one it refuses is refused here.
Hexadecimal floats (`0x1p4`) are refused: Go takes them, no manifest writes them.
"""

from __future__ import annotations

import math
import re

NANOSECOND = 1
SECOND = 1_000_000_000
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": SECOND,
    "m": 60 * SECOND,
    "h": 3600 * SECOND,
}
_MAX_DURATION = 1 << 63
_BOOLS = {
    "1": True,
    "t": True,
    "T": True,
    "TRUE": True,
    "true": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "FALSE": False,
    "false": False,
    "False": False,
}
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_SPECIAL_FLOAT = re.compile(r"[+-]?(inf|infinity)|nan", re.IGNORECASE)


class RangeError(ValueError):
    """A number written correctly that does not fit (Go's `strconv.ErrRange`)."""


def parse_bool(text: str) -> bool:
    """Go's `strconv.ParseBool`: 1, t, T, TRUE, true, True and their false forms."""
    try:
        return _BOOLS[text]
    except KeyError:
        raise ValueError(f"invalid boolean {text!r}") from None


def parse_int(text: str, bits: int = 64) -> int:
    """Go's `strconv.ParseInt(text, 10, bits)`: optional sign, decimal digits only.
    Raises RangeError for a whole number that does not fit in `bits`."""
    if not _INT.fullmatch(text):
        raise ValueError(f"invalid integer {text!r}")
    value = int(text)
    limit = 1 << (bits - 1)
    if not -limit <= value < limit:
        raise RangeError(f"integer {text!r} out of range for {bits} bits")
    return value


def parse_float(text: str) -> float:
    """Go's `strconv.ParseFloat(text, 64)` for decimal numbers, Inf and NaN."""
    if _SPECIAL_FLOAT.fullmatch(text):
        return float(text)
    if not _FLOAT.fullmatch(text):
        raise ValueError(f"invalid number {text!r}")
    value = float(text)
    if math.isinf(value):
        raise RangeError(f"number {text!r} out of range")
    return value


def parse_duration(text: str) -> int:
    """Go's `time.ParseDuration`, in nanoseconds: `300ms`, `-1.5h`, `2h45m`, `0`."""
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total = 0
    while rest:
        if not (rest[0] == "." or rest[0].isascii() and rest[0].isdigit()):
            raise ValueError(f"invalid duration {text!r}")
        whole, rest = _leading_digits(rest)
        if len(whole) and int(whole) > _MAX_DURATION:
            raise ValueError(f"invalid duration {text!r}")
        fraction, scale, had_fraction = 0, 1.0, False
        if rest[:1] == ".":
            digits, rest = _leading_digits(rest[1:])
            had_fraction = bool(digits)
            fraction, scale = _fraction(digits)
        if not whole and not had_fraction:
            raise ValueError(f"invalid duration {text!r}")
        unit_end = 0
        while unit_end < len(rest) and not (
            rest[unit_end] == "." or rest[unit_end].isascii() and rest[unit_end].isdigit()
        ):
            unit_end += 1
        if unit_end == 0:
            raise ValueError(f"missing unit in duration {text!r}")
        unit_name, rest = rest[:unit_end], rest[unit_end:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"unknown unit {unit_name!r} in duration {text!r}")
        value = int(whole or "0")
        if value > _MAX_DURATION // unit:
            raise ValueError(f"invalid duration {text!r}")
        value *= unit
        if fraction > 0:
            # As Go does: a float64 is exact to the nanosecond for fractions of an hour.
            value += int(float(fraction) * (float(unit) / scale))
            if value > _MAX_DURATION:
                raise ValueError(f"invalid duration {text!r}")
        total += value
        if total > _MAX_DURATION:
            raise ValueError(f"invalid duration {text!r}")
    if negative:
        return -total
    if total > _MAX_DURATION - 1:
        raise ValueError(f"invalid duration {text!r}")
    return total


def format_duration(ns: int) -> str:
    """A duration as Go's `Duration.String` writes whole seconds and minutes (`1m30s`),
    for error messages; sub-second parts are written as fractions of a second."""
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns == 0:
        return "0s"
    hours, ns = divmod(ns, 3600 * SECOND)
    minutes, ns = divmod(ns, 60 * SECOND)
    seconds = f"{ns / SECOND:.9f}".rstrip("0").rstrip(".")
    out = ""
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return f"{sign}{out}{seconds}s"


def _leading_digits(text: str) -> tuple[str, str]:
    end = 0
    while end < len(text) and text[end].isascii() and text[end].isdigit():
        end += 1
    return text[:end], text[end:]


def _fraction(digits: str) -> tuple[int, float]:
    """The digits after a decimal point as Go reads them: digits past int64's reach
    are dropped rather than overflowing."""
    value, scale, overflow = 0, 1.0, False
    for ch in digits:
        if overflow:
            continue
        if value > ((1 << 63) - 1) // 10:
            overflow = True
            continue
        candidate = value * 10 + int(ch)
        if candidate > 1 << 63:
            overflow = True
            continue
        value = candidate
        scale *= 10
    return value, scale
