"""Telemetry checks beyond the schema.

- Selector labels are Kubernetes label keys and values, without wildcards (as
  PeerAuthentication's).
- Metrics: a tag override with operation UPSERT has a `value`, one with REMOVE none
  (as Istio's validation).
- Tracing: an entry names at most one provider, and all entries of one Telemetry the
  same one (a proxy has one tracer, as in Istio); each custom tag has a name and sets
  exactly one of `literal`, `environment`, `header`; header names are valid (in any
  case: HTTP header names are case-insensitive, and the tag reads the header lowercased).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from amimesh.resources import istio_telemetry as tel
from amimesh.resources.checks_security import selector_issues
from amimesh.resources.errors import Issue
from amimesh.resources.fields import show

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_telemetry(t: tel.Telemetry) -> Iterator[Issue]:
    if t.spec.selector is not None:
        yield from selector_issues(t.spec.selector, ("spec", "selector", "matchLabels"))
    yield from _tracing_issues(t.spec.tracing)
    for i, entry in enumerate(t.spec.metrics):
        for j, override in enumerate(entry.overrides):
            for tag, op in override.tagOverrides.items():
                where = ("spec", "metrics", i, "overrides", j, "tagOverrides", tag)
                if not tag.strip():
                    yield Issue(where, "a tag override needs a tag name")
                if op.operation == "UPSERT" and not op.value:
                    yield Issue((*where, "value"), "is required with operation UPSERT")
                if op.operation == "REMOVE" and op.value is not None:
                    yield Issue((*where, "value"), "must not be set with operation REMOVE")


def _tracing_issues(entries: list[tel.Tracing]) -> Iterator[Issue]:
    first: str | None = None
    for i, entry in enumerate(entries):
        where = ("spec", "tracing", i)
        if len(entry.providers) > 1:
            yield Issue(
                (*where, "providers"),
                f"names {len(entry.providers)} providers; a proxy traces with one at most",
            )
        for j, ref in enumerate(entry.providers):
            name = tel.provider_kind(ref.name)
            if first is None:
                first = name
            elif name != first:
                yield Issue(
                    (*where, "providers", j, "name"),
                    f"{show(ref.name)} differs from the provider an earlier entry names; "
                    "a proxy traces with one provider",
                )
        for tag, custom in entry.customTags.items():
            yield from _tag_issues(tag, custom, (*where, "customTags", tag))


def _tag_issues(tag: str, custom: tel.CustomTag, where: tuple[str | int, ...]) -> Iterator[Issue]:
    if not tag.strip():
        yield Issue(where, "a custom tag needs a name")
    kinds = [
        k
        for k, v in (
            ("literal", custom.literal),
            ("environment", custom.environment),
            ("header", custom.header),
        )
        if v is not None
    ]
    if len(kinds) != 1:
        got = ", ".join(kinds) if kinds else "none"
        yield Issue(where, f"must set exactly one of literal, environment, header; got {got}")
    if custom.header is not None:
        name = custom.header.name
        if not _TOKEN.match(name):
            yield Issue((*where, "header", "name"), f"{show(name)} is not a valid HTTP header name")
    if custom.environment is not None and not _ENV_NAME.match(custom.environment.name):
        yield Issue(
            (*where, "environment", "name"),
            f"{show(custom.environment.name)} is not an environment variable name",
        )
