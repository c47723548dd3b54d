"""Tekton Triggers' checks beyond the schema, one resource at a time (Tekton's webhook
makes the same ones): a trigger names a template, bindings are a ref or a name and a
value, interceptors are ones Ami runs with their params right, CEL compiles, and a
TriggerTemplate declares every `$(tt.params.x)` it uses and makes only runs.

What depends on other resources (a binding or template that does not exist, a Secret
or key that is not there) is `triggers_refs`' to say. Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence

from pydantic import ValidationError

from amimesh.resources import cel_ext
from amimesh.resources import tekton_triggers as tt
from amimesh.resources.errors import Issue, Loc

_TT_PARAM = re.compile(r"\$\(tt\.params\.([A-Za-z0-9_.-]+)\)")
RUN_KINDS = ("PipelineRun", "TaskRun")
RUN_VERSIONS = ("tekton.dev/v1", "tekton.dev/v1beta1")


def check_event_listener(el: tt.EventListener) -> Iterator[Issue]:
    for i, t in enumerate(el.spec.triggers):
        loc: Loc = ("spec", "triggers", i)
        if t.triggerRef:
            if t.bindings or t.template is not None or t.interceptors:
                yield Issue(
                    (*loc, "triggerRef"),
                    "a trigger with triggerRef takes no bindings, template or interceptors",
                )
            continue
        yield from trigger_spec_issues(t, loc)


def check_trigger(t: tt.Trigger) -> Iterator[Issue]:
    yield from trigger_spec_issues(t.spec, ("spec",))


def check_trigger_binding(b: tt.TriggerBinding | tt.ClusterTriggerBinding) -> Iterator[Issue]:
    yield from _duplicate_names([p.name for p in b.spec.params], ("spec", "params"))


def check_trigger_template(t: tt.TriggerTemplate) -> Iterator[Issue]:
    yield from template_spec_issues(t.spec, ("spec",))


def trigger_spec_issues(t: tt.TriggerSpec, loc: Loc) -> Iterator[Issue]:
    if t.template is None or (t.template.ref is None and t.template.spec is None):
        yield Issue((*loc, "template"), "a trigger needs a template: ref or spec")
    elif t.template.ref is not None and t.template.spec is not None:
        yield Issue((*loc, "template"), "set one of ref and spec")
    elif t.template.spec is not None:
        yield from template_spec_issues(t.template.spec, (*loc, "template", "spec"))
    for i, b in enumerate(t.bindings):
        where = (*loc, "bindings", i)
        if b.ref and (b.name or b.value is not None):
            yield Issue(where, "a binding is a ref, or a name and a value; not both")
        elif not b.ref and (not b.name or b.value is None):
            yield Issue(where, "a binding needs a ref, or a name and a value")
    inline = [b.name for b in t.bindings if not b.ref]
    yield from _duplicate_names(inline, (*loc, "bindings"))
    for i, icp in enumerate(t.interceptors):
        yield from interceptor_issues(icp, (*loc, "interceptors", i))


def interceptor_issues(i: tt.TriggerInterceptor, loc: Loc) -> Iterator[Issue]:
    try:
        found = tt.interceptor_of(i)
    except ValidationError as err:
        for e in err.errors():
            yield Issue((*loc, "params", *e["loc"]), e["msg"])
        return
    except ValueError as err:
        yield Issue(loc, str(err))
        return
    if isinstance(found, tt.GithubInterceptor):
        ref = found.secretRef
        if ref is not None and (not ref.secretName or not ref.secretKey):
            yield Issue(
                (*loc, "secretRef"), "github interceptor secretRef needs secretName and secretKey"
            )
        return
    if found.filter:
        yield from cel_issues(found.filter, (*loc, "filter"))
    for n, o in enumerate(found.overlays):
        yield from cel_issues(o.expression, (*loc, "overlays", n, "expression"))


def cel_issues(expression: str, loc: Loc) -> Iterator[Issue]:
    cel = cel_ext.load()  # loaded when a trigger uses CEL

    try:
        cel.compile(expression)
    except (ValueError, TypeError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else "syntax error"
        prefix = f"Failed to parse expression '{expression}': "
        first = first.removeprefix(prefix)
        yield Issue(loc, f"failed to parse the CEL expression {expression!r}: {first}")


def template_spec_issues(spec: tt.TriggerTemplateSpec, loc: Loc) -> Iterator[Issue]:
    yield from _duplicate_names([p.name for p in spec.params], (*loc, "params"))
    declared = {p.name for p in spec.params}
    for i, rt in enumerate(spec.resourcetemplates):
        where = (*loc, "resourcetemplates", i)
        if rt.get("kind") not in RUN_KINDS or rt.get("apiVersion") not in RUN_VERSIONS:
            yield Issue(
                where,
                f"Ami's triggers create PipelineRuns and TaskRuns ({', '.join(RUN_VERSIONS)}); "
                f"got {rt.get('kind')!r} of {rt.get('apiVersion')!r}",
            )
        meta = rt.get("metadata")
        if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
            yield Issue((*where, "metadata"), "needs a name or a generateName")
        text = json.dumps(rt)
        for name in sorted(set(_TT_PARAM.findall(text)) - declared):
            yield Issue(where, f"$(tt.params.{name}) is used but {name!r} is not a declared param")


def _duplicate_names(names: Sequence[str], loc: Loc) -> Iterator[Issue]:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            yield Issue(loc, f"duplicate param name: {n}")
        seen.add(n)
