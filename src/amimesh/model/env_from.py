"""Workloads' variables read from a ConfigMap's or a Secret's key (`valueFrom`), as the
kubelet reads them when it starts a container. Pure.

The control plane reads them when it hands the Workloads to the node agents
(`resolved`): the store, the API and `ami get` keep the references, so a Secret's
value is never shown. A key that is not there leaves an `optional` variable out;
any other keeps its Workload from running until the key is there (as Kubernetes
starts no container whose variable it cannot read), and `ami analyze` names it
(`missing`). A value changed later is read again: the Workload's instances restart
with it, as after any change of their variables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from amimesh.resources.kube import ConfigMap, Secret
from amimesh.resources.meta import Resource
from amimesh.resources.workload import EnvVar, EnvVarSource, Workload

Sources = Mapping[tuple[str, str, str], ConfigMap | Secret]  # (kind, namespace, name)


@dataclass(frozen=True)
class Missing:
    """A variable of a Workload that cannot be read: where, and why."""

    workload: Workload
    field: str  # spec.env[i].valueFrom.secretKeyRef
    message: str


def sources(resources: Iterable[Resource]) -> Sources:
    return {
        (r.KIND, r.namespace, r.name): r for r in resources if isinstance(r, ConfigMap | Secret)
    }


def _read(ref: EnvVarSource, namespace: str, found: Sources) -> tuple[str | None, str]:
    """The value, or None and why not (no why: an optional key that is not there)."""
    if ref.secretKeyRef is not None:
        kind, sel = "Secret", ref.secretKeyRef
    else:
        assert ref.configMapKeyRef is not None
        kind, sel = "ConfigMap", ref.configMapKeyRef
    holder = found.get((kind, namespace, sel.name))
    raw: bytes | str | None = None
    if isinstance(holder, Secret):
        raw = holder.value(sel.key)
    elif isinstance(holder, ConfigMap):
        raw = holder.data.get(sel.key)
    if raw is None:
        if sel.optional:
            return None, ""
        if holder is None:
            return None, f'no {kind} "{sel.name}" in namespace "{namespace}"'
        return None, f'{kind} "{sel.name}" has no key "{sel.key}"'
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None, f'{kind} "{sel.name}": the value of "{sel.key}" is not UTF-8 text'
    if "\0" in raw:
        return None, f'{kind} "{sel.name}": the value of "{sel.key}" has a NUL byte'
    return raw, ""


def _field(i: int, ref: EnvVarSource) -> str:
    which = "secretKeyRef" if ref.secretKeyRef is not None else "configMapKeyRef"
    return f"spec.env[{i}].valueFrom.{which}"


def _read_all(w: Workload, found: Sources) -> tuple[list[EnvVar], list[Missing]]:
    """The Workload's variables with their `valueFrom` read (an optional one that is not
    there left out), and the ones that cannot be read."""
    env: list[EnvVar] = []
    problems: list[Missing] = []
    for i, e in enumerate(w.spec.env):
        if e.valueFrom is None:
            env.append(e)
            continue
        value, why = _read(e.valueFrom, w.namespace, found)
        if why:
            problems.append(Missing(w, _field(i, e.valueFrom), why))
        elif value is not None:
            # `$$` is a `$`: the value is taken as it is, as Kubernetes takes a
            # `valueFrom` value, with no `$(VAR)` expanded in it.
            env.append(EnvVar(name=e.name, value=value.replace("$", "$$")))
    return env, problems


def _reads(w: Workload) -> bool:
    return any(e.valueFrom is not None for e in w.spec.env)


def missing(workloads: Iterable[Workload], found: Sources) -> Iterator[Missing]:
    """Every variable of `workloads` that cannot be read."""
    for w in workloads:
        if _reads(w):
            yield from _read_all(w, found)[1]


def resolved(
    items: Iterable[Resource], resources: Iterable[Resource]
) -> tuple[list[Resource], list[Missing]]:
    """`items` with each Workload's `valueFrom` variables read (an optional one that is
    not there left out), less the Workloads one of whose variables cannot be read."""
    found: Sources | None = None  # the ConfigMaps and Secrets, looked up when needed
    out: list[Resource] = []
    problems: list[Missing] = []
    for item in items:
        if not isinstance(item, Workload) or not _reads(item):
            out.append(item)
            continue
        if found is None:
            found = sources(resources)
        env, why = _read_all(item, found)
        if why:
            problems += why
            continue
        spec = item.spec.model_copy(update={"env": env})
        out.append(item.model_copy(update={"spec": spec}))
    return out, problems
