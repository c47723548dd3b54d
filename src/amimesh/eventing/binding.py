"""SinkBinding: `K_SINK` and `K_CE_OVERRIDES` in the environment of the workloads a
binding's subject names. Pure.

    resources = bound(resources, every)   # what the node agents get (the control plane's API)

A subject is a Workload (`ami.dev/v1alpha1`), a Kubernetes Deployment, StatefulSet,
DaemonSet or Job (Ami's Workload takes their place: the one of that name or those the
selector picks), or a Knative Service (its revisions' workloads), by `name` or by
`selector.matchLabels`, in the binding's namespace (or the subject's). The variables
are set on the Workloads the control plane hands the node agents, not on what users
wrote: a workload
whose variables do not change is not restarted when a binding changes, and one that a
binding stops naming loses them (and restarts, as its environment changed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from amimesh.eventing.addressing import destination_url
from amimesh.eventing.expand import OVERRIDES_ENV, SINK_ENV
from amimesh.resources import knative_eventing as ke
from amimesh.resources.meta import Resource
from amimesh.resources.workload import EnvVar, Workload

# Kubernetes kinds that Ami's Workload stands for.
WORKLOAD_KINDS = frozenset(
    {
        ("ami.dev", "Workload"),
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("batch", "Job"),
    }
)
KNATIVE_SERVICE = ("serving.knative.dev", "Service")
SERVICE_LABEL = "serving.knative.dev/service"


def _selects(binding: ke.SinkBinding, w: Workload) -> bool:
    subject = binding.spec.subject
    if (subject.namespace or binding.namespace) != w.namespace:
        return False
    group = subject.apiVersion.rpartition("/")[0]
    labels = w.metadata.labels
    if (group, subject.kind) in WORKLOAD_KINDS:
        if subject.name is not None:
            return w.name == subject.name
    elif (group, subject.kind) == KNATIVE_SERVICE:
        if subject.name is not None:
            return labels.get(SERVICE_LABEL) == subject.name
        if SERVICE_LABEL not in labels:
            return False
    else:
        return False
    wanted = subject.selector.matchLabels if subject.selector is not None else {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def variables(binding: ke.SinkBinding, resources: Sequence[Resource]) -> dict[str, str] | None:
    """What a binding sets, or None when its sink cannot be resolved."""
    sink = destination_url(binding.spec.sink, binding.namespace, resources)
    if sink.startswith("!"):
        return None
    out = {SINK_ENV: sink}
    if binding.spec.ceOverrides is not None:
        overrides = {"extensions": dict(binding.spec.ceOverrides.extensions)}
        out[OVERRIDES_ENV] = json.dumps(overrides, sort_keys=True)
    return out


def bound(items: Iterable[Resource], resources: Iterable[Resource]) -> list[Resource]:
    """`items`, the Workloads a SinkBinding of `resources` names with its variables
    set (a workload two bindings name takes the first's, by namespace and name)."""
    resources = list(resources)
    bindings = sorted((r for r in resources if isinstance(r, ke.SinkBinding)), key=lambda b: b.key)
    sets = [(b, variables(b, resources)) for b in bindings]
    out: list[Resource] = []
    for item in items:
        if isinstance(item, Workload):
            env = next((v for b, v in sets if v is not None and _selects(b, item)), None)
            if env is not None:
                item = _with_env(item, env)
        out.append(item)
    return out


def _with_env(w: Workload, env: Mapping[str, str]) -> Workload:
    kept = [e for e in w.spec.env if e.name not in env]
    added = [EnvVar(name=k, value=v) for k, v in env.items()]
    spec = w.spec.model_copy(update={"env": [*kept, *added]})
    return w.model_copy(update={"spec": spec})
