"""Tekton Triggers' evaluation, after the interceptors: which triggers an EventListener
has, the params its bindings take from an event, and the runs its template makes. Pure.

    event = Event.of(body_bytes, {"X-GitHub-Event": ["push"]})
    for t in listener_triggers(el, resources):       # TriggerRef, or ResolveError
        params = resolve_params(t.bindings, t.template.params, event, extensions)
        runs = render(t.template, params, uid=..., suffix=...)

A binding's `$(body.a.b)`, `$(body.list[0])`, `$(header.X-Name)` (any case; the values
joined with ","), `$(extensions.k)`; a string value as it is, anything else as JSON
(Go's `json.Marshal`: compact, keys sorted). A path that names nothing takes the
template param's default, or fails the trigger. Templates get `$(tt.params.x)` and
`$(uid)` put into every string; a `generateName` becomes a name with the suffix given.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from amimesh.resources import tekton_triggers as tt
from amimesh.resources.errors import Issue
from amimesh.resources.kube import Secret
from amimesh.resources.meta import Resource

LABEL_PREFIX = "triggers.tekton.dev"
EVENTLISTENER_LABEL = f"{LABEL_PREFIX}/eventlistener"
TRIGGER_LABEL = f"{LABEL_PREFIX}/trigger"
EVENTID_LABEL = f"{LABEL_PREFIX}/triggers-eventid"

_EXPRESSION = re.compile(r"\$\(([^()]*)\)")
_TT_PARAM = re.compile(r"\$\(tt\.params\.([A-Za-z0-9_.-]+)\)")
_SEGMENT = re.compile(r"((?:\\.|[^.\[\]\\])+)|\[(-?[0-9]+)\]")


class ResolveError(ValueError):
    """A trigger that cannot run: a binding or template that does not exist, a param
    with no value. Tekton logs it and starts nothing for that trigger."""


def canonical(name: str) -> str:
    """A header name as Go's `CanonicalMIMEHeaderKey` writes it: `X-Github-Event`."""
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


@dataclass(frozen=True)
class Event:
    """A webhook: the raw body, its JSON (None when empty) and headers by canonical name."""

    body: bytes
    data: Any
    headers: Mapping[str, tuple[str, ...]]
    url: str = ""

    @classmethod
    def of(cls, body: bytes, headers: Mapping[str, Sequence[str]], url: str = "") -> Event:
        """ValueError when the body is not JSON (Tekton: failed to unmarshal)."""
        data: Any = None
        if body:
            try:
                data = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ValueError(f"failed to unmarshal request body: {err}") from None
        merged: dict[str, list[str]] = {}
        for k, vs in headers.items():
            merged.setdefault(canonical(k), []).extend(vs)
        return cls(body, data, {k: tuple(v) for k, v in merged.items()}, url)

    def header(self, name: str) -> str:
        """The first value of a header, "" when absent (Go's `Header.Get`)."""
        values = self.headers.get(canonical(name), ())
        return values[0] if values else ""


@dataclass(frozen=True)
class ResolvedTrigger:
    """A trigger with its bindings' params (in order) and template, refs looked up."""

    name: str
    namespace: str
    interceptors: tuple[tt.TriggerInterceptor, ...]
    bindings: tuple[tt.Param, ...]
    template: tt.TriggerTemplateSpec
    template_annotations: Mapping[str, str] = field(default_factory=dict)


# --- which triggers a listener has -------------------------------------------------------


def listener_triggers(
    el: tt.EventListener, resources: Iterable[Resource]
) -> list[ResolvedTrigger | ResolveError]:
    """Each trigger of `el`: inline ones (or their `triggerRef`) in order, then the
    Trigger resources its `namespaceSelector`/`labelSelector` select, as Tekton's sink
    selects them. A trigger whose refs do not resolve is a ResolveError in its place."""
    res = list(resources)
    triggers = {(r.namespace, r.name): r for r in res if isinstance(r, tt.Trigger)}
    out: list[ResolvedTrigger | ResolveError] = []
    for i, t in enumerate(el.spec.triggers):
        name = t.name or f"{el.name}-{i}"
        if t.triggerRef:
            found = triggers.get((el.namespace, t.triggerRef))
            if found is None:
                out.append(ResolveError(f'trigger "{t.triggerRef}" not found in {el.namespace}'))
                continue
            out.append(_resolve(found.name, found.namespace, found.spec, res))
        else:
            out.append(_resolve(name, el.namespace, t, res))
    for trig in _selected(el, triggers.values()):
        out.append(_resolve(trig.name, trig.namespace, trig.spec, res))
    return out


def _selected(el: tt.EventListener, triggers: Iterable[tt.Trigger]) -> list[tt.Trigger]:
    names = el.spec.namespaceSelector.matchNames if el.spec.namespaceSelector else []
    labels = el.spec.labelSelector.matchLabels if el.spec.labelSelector else None
    if not names and labels is None:
        return []
    everywhere = names == ["*"]
    namespaces = set(names) if names else {el.namespace}
    return sorted(
        (
            t
            for t in triggers
            if (everywhere or t.namespace in namespaces)
            and all(t.metadata.labels.get(k) == v for k, v in (labels or {}).items())
        ),
        key=lambda t: (t.namespace, t.name),
    )


def _resolve(
    name: str, namespace: str, spec: tt.TriggerSpec, resources: Sequence[Resource]
) -> ResolvedTrigger | ResolveError:
    params: list[tt.Param] = []
    for b in spec.bindings:
        if not b.ref:
            params.append(tt.Param(name=b.name, value=b.value or ""))
            continue
        found = _binding(b, namespace, resources)
        if found is None:
            return ResolveError(f'{b.kind} "{b.ref}" not found (trigger {name})')
        params.extend(found.spec.params)
    seen: set[str] = set()
    for p in params:
        if p.name in seen:
            return ResolveError(f"duplicate param name: {p.name} (trigger {name})")
        seen.add(p.name)
    assert spec.template is not None  # checked at validation
    annotations: Mapping[str, str] = {}
    if spec.template.spec is not None:
        template = spec.template.spec
    else:
        found_t = next(
            (
                r
                for r in resources
                if isinstance(r, tt.TriggerTemplate)
                and (r.namespace, r.name) == (namespace, spec.template.ref)
            ),
            None,
        )
        if found_t is None:
            return ResolveError(f'TriggerTemplate "{spec.template.ref}" not found (trigger {name})')
        template, annotations = found_t.spec, found_t.metadata.annotations
    return ResolvedTrigger(
        name, namespace, tuple(spec.interceptors), tuple(params), template, annotations
    )


def _binding(
    b: tt.TriggerSpecBinding, namespace: str, resources: Sequence[Resource]
) -> tt.TriggerBinding | tt.ClusterTriggerBinding | None:
    for r in resources:
        if b.kind == "ClusterTriggerBinding":
            if isinstance(r, tt.ClusterTriggerBinding) and r.name == b.ref:
                return r
        elif isinstance(r, tt.TriggerBinding) and (r.namespace, r.name) == (namespace, b.ref):
            return r
    return None


def ref_issues(resources: Iterable[Resource]) -> list[tuple[Resource, Issue]]:
    """What refers to nothing: a trigger's binding, template or Trigger, an
    interceptor's Secret or key. (resource, issue) for each, in resource order."""
    res = list(resources)
    secrets = {(r.namespace, r.name): r for r in res if isinstance(r, Secret)}
    triggers = {(r.namespace, r.name) for r in res if isinstance(r, tt.Trigger)}
    out: list[tuple[Resource, Issue]] = []
    for r in res:
        specs: list[tuple[tuple[str | int, ...], tt.TriggerSpec]] = []
        if isinstance(r, tt.EventListener):
            for i, t in enumerate(r.spec.triggers):
                loc: tuple[str | int, ...] = ("spec", "triggers", i)
                if t.triggerRef:
                    if (r.namespace, t.triggerRef) not in triggers:
                        msg = f'Trigger "{t.triggerRef}" not found in namespace {r.namespace}'
                        out.append((r, Issue((*loc, "triggerRef"), msg)))
                else:
                    specs.append((loc, t))
        elif isinstance(r, tt.Trigger):
            specs.append((("spec",), r.spec))
        for loc, spec in specs:
            for i, b in enumerate(spec.bindings):
                if b.ref and _binding(b, r.namespace, res) is None:
                    out.append(
                        (r, Issue((*loc, "bindings", i, "ref"), f'{b.kind} "{b.ref}" not found'))
                    )
            tref = spec.template.ref if spec.template else None
            if tref is not None and not any(
                isinstance(x, tt.TriggerTemplate) and (x.namespace, x.name) == (r.namespace, tref)
                for x in res
            ):
                out.append(
                    (r, Issue((*loc, "template", "ref"), f'TriggerTemplate "{tref}" not found'))
                )
            for i, icp in enumerate(spec.interceptors):
                try:
                    found = tt.interceptor_of(icp)
                except ValueError:
                    continue  # the resource's own check says why
                if isinstance(found, tt.GithubInterceptor) and found.secretRef is not None:
                    ref = found.secretRef
                    s = secrets.get((r.namespace, ref.secretName))
                    where = (*loc, "interceptors", i, "secretRef")
                    if s is None:
                        msg = f'Secret "{ref.secretName}" not found in namespace {r.namespace}'
                        out.append((r, Issue(where, msg)))
                    elif s.value(ref.secretKey) is None:
                        msg = f'Secret "{ref.secretName}" has no key "{ref.secretKey}"'
                        out.append((r, Issue(where, msg)))
    return out


def field_path(loc: Sequence[str | int]) -> str:
    """`("spec", "bindings", 0, "ref")` as errors write it: `spec.bindings[0].ref`."""
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


# --- bindings ----------------------------------------------------------------------------


def event_json(event: Event, extensions: Mapping[str, Any]) -> dict[str, Any]:
    """What a binding's paths read: body, header (values joined), extensions."""
    return {
        "body": event.data,
        "header": {k: ",".join(v) for k, v in event.headers.items()},
        "extensions": dict(extensions),
    }


def lookup(path: str, data: Mapping[str, Any]) -> Any:
    """The value at a binding path (`body.a.b`, `body.l[0]`, `header.X-Name`); KeyError
    when it names nothing. A header name matches in any case."""
    path = path[1:] if path.startswith(".") else path
    segments: list[str | int] = []
    pos = 0
    while pos < len(path):
        if path[pos] == "." and segments:
            pos += 1
        m = _SEGMENT.match(path, pos)
        if m is None:
            raise KeyError(path)
        segments.append(m.group(1).replace("\\", "") if m.group(1) else int(m.group(2)))
        pos = m.end()
    current: Any = data
    for i, s in enumerate(segments):
        if isinstance(s, int):
            if not isinstance(current, list) or not -len(current) <= s < len(current):
                raise KeyError(path)
            current = current[s]
        elif isinstance(current, dict):
            if s in current:
                current = current[s]
            elif i == 1 and segments[0] == "header" and canonical(s) in current:
                current = current[canonical(s)]
            else:
                raise KeyError(path)
        else:
            raise KeyError(path)
    return current


def as_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def resolve_params(
    bindings: Sequence[tt.Param],
    declared: Sequence[tt.ParamSpec],
    event: Event,
    extensions: Mapping[str, Any],
) -> dict[str, str]:
    """Each param's value: the template's defaults, then each binding with its
    `$(...)` paths read from the event; a path that names nothing takes the default,
    or raises ResolveError (Tekton: failed to replace JSONPath value)."""
    data = event_json(event, extensions)
    defaults = {p.name: p.default for p in declared if p.default is not None}
    out: dict[str, str] = dict(defaults)
    for p in bindings:
        value = p.value
        for m in _EXPRESSION.finditer(p.value):
            try:
                got = as_string(lookup(m.group(1), data))
            except KeyError:
                if p.name in defaults:
                    value = defaults[p.name]
                    break
                raise ResolveError(
                    f"failed to replace JSONPath value for param {p.name}: {p.value}: "
                    f"{m.group(1)} is not found"
                ) from None
            value = value.replace(m.group(0), got)
        out[p.name] = value
    return out


# --- templates ---------------------------------------------------------------------------


def render(
    template: tt.TriggerTemplateSpec,
    params: Mapping[str, str],
    *,
    uid: str,
    suffix: Callable[[], str],
    labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The template's resources with `$(tt.params.x)` and `$(uid)` put in every string,
    `generateName` made a name (`suffix()` appended) and `labels` added. A declared
    param with no value and no default raises ResolveError."""
    missing = [p.name for p in template.params if p.name not in params and p.default is None]
    if missing:
        raise ResolveError(f"param {missing[0]} has no value and no default")
    values = {p.name: p.default or "" for p in template.params if p.default is not None}
    values.update(params)

    def put(text: str) -> str:
        text = _TT_PARAM.sub(
            lambda m: values.get(m.group(1), m.group(0)),
            text,
        )
        return text.replace("$(uid)", uid)

    out = []
    for rt in template.resourcetemplates:
        obj = _walk(copy.deepcopy(rt), put)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta.pop("generateName")) + suffix()
        else:
            meta.pop("generateName", None)
        if labels:
            meta["labels"] = {**(meta.get("labels") or {}), **labels}
        out.append(obj)
    return out


def _walk(value: Any, put: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return put(value)
    if isinstance(value, list):
        return [_walk(v, put) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, put) for k, v in value.items()}
    return value
