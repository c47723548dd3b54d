"""Trigger filters, as Knative's broker applies them. Pure.

An event is its context attributes as strings (`attributes_of` makes them from a
CloudEvent): `type`, `source`, `id`, `specversion`, the optional ones it has, and its
extensions. A filter is written as a Trigger writes it (the JSON of
`spec.filter.attributes` or of one `spec.filters` item).

Knative's rules (knative/eventing `pkg/eventfilter`), each a `Result`:
- `filter.attributes`: every attribute must be present and equal; the value `""`
  matches any value, but the attribute must be present and not empty;
- `filters` (the newer dialects): all of the list must pass, and a non-empty list
  overrides `filter`; `exact`, `prefix` and `suffix` fail on an absent attribute;
  `all` fails at the first failing filter, `any` passes at the first passing one,
  `not` turns pass into fail and fail into pass; an empty filter (or an empty
  `all`/`any`) is no filter, and `not` of no filter is still no filter;
- `cesql` passes when the expression (`eventing.cesql`) is true with no error;
- an event is delivered unless the trigger's filter fails (no filter delivers).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

from amimesh.eventing import cesql

Attributes = Mapping[str, str | int | bool]


def _text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Result(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    NONE = "none"  # no filter: delivers


def attributes_filter(wanted: Mapping[str, str], event: Attributes) -> Result:
    """Knative's `filter.attributes`."""
    if not wanted:
        return Result.NONE
    for name, value in wanted.items():
        found = event.get(name)
        got = None if found is None else _text(found)
        if got is None or (value == "" and got == ""):
            return Result.FAIL
        if value != "" and value != got:
            return Result.FAIL
    return Result.PASS


def _compare(wanted: Mapping[str, str], event: Attributes, how: str) -> Result:
    for name, value in wanted.items():
        found = event.get(name)
        if found is None:
            return Result.FAIL
        got = _text(found)
        if how == "exact" and got != value:
            return Result.FAIL
        if how == "prefix" and not got.startswith(value):
            return Result.FAIL
        if how == "suffix" and not got.endswith(value):
            return Result.FAIL
    return Result.PASS


def dialect_filter(f: Mapping[str, Any], event: Attributes) -> Result:
    """One item of `filters`: its one dialect applied (Knative takes the first set one,
    in the order exact, prefix, suffix, all, any, not)."""
    for how in ("exact", "prefix", "suffix"):
        wanted = f.get(how)
        if wanted:
            return _compare(wanted, event, how)
    if f.get("all"):
        return all_of(f["all"], event)
    if f.get("any"):
        return any_of(f["any"], event)
    if f.get("not") is not None:
        inner = dialect_filter(f["not"], event)
        if inner is Result.NONE:
            return Result.NONE
        return Result.FAIL if inner is Result.PASS else Result.PASS
    if f.get("cesql"):
        return Result.PASS if cesql.passes(f["cesql"], event) else Result.FAIL
    return Result.NONE


def all_of(filters: Sequence[Mapping[str, Any]], event: Attributes) -> Result:
    result = Result.NONE
    for f in filters:
        result = dialect_filter(f, event)
        if result is Result.FAIL:
            return Result.FAIL
    return result


def any_of(filters: Sequence[Mapping[str, Any]], event: Attributes) -> Result:
    result = Result.NONE
    for f in filters:
        result = dialect_filter(f, event)
        if result is Result.PASS:
            return Result.PASS
    return result


def trigger_result(
    attributes: Mapping[str, str] | None, filters: Sequence[Mapping[str, Any]], event: Attributes
) -> Result:
    """A Trigger's filter result: `filters` when it has any, else `filter.attributes`."""
    if filters:
        return all_of(filters, event)
    if attributes:
        return attributes_filter(attributes, event)
    return Result.NONE


def matches(
    attributes: Mapping[str, str] | None, filters: Sequence[Mapping[str, Any]], event: Attributes
) -> bool:
    """Whether a Trigger delivers the event: unless its filter fails."""
    return trigger_result(attributes, filters, event) is not Result.FAIL
