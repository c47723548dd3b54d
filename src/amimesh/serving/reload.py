"""Live reload of Knative Services and Configurations, pure: which ones follow which
directory, and their templates stamped with that directory's content digest.

A new digest is a new template, so the controller makes a new (immutable) revision,
and the route moves to it once it is ready, as after any template change. The digest
is the control plane's to compute (`config.watch.content_digest`); it is handed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from amimesh.resources import knative_serving as ks
from amimesh.resources.kube import ConfigMap
from amimesh.resources.meta import Resource
from amimesh.resources.workload import reload_wanted
from amimesh.serving.expand import image_map, runnable, serving_container

# On a revision template: the content digest of the directory its container runs in.
SOURCE_DIGEST = "ami.dev/source-digest"

Key = tuple[str, str]  # (namespace, name) of a Service or Configuration


def source_dirs(resources: Sequence[Resource], *, default: bool) -> dict[Key, str]:
    """The Knative Services and standalone Configurations that live reload applies to,
    each with the directory its serving container runs in (relative to the mesh's
    directory; "" is the mesh's directory itself): the template's or the Service's
    `ami.dev/reload` annotation, else `default` for a container with a `workingDir` of
    its own or from the image map."""
    images = image_map(r for r in resources if isinstance(r, ConfigMap))
    out: dict[Key, str] = {}
    for r in resources:
        if not isinstance(r, ks.Service | ks.Configuration):
            continue
        template = r.spec.template
        run = runnable(serving_container(template.spec), images)
        if isinstance(run, str):
            continue
        annotations = {**r.metadata.annotations, **template.metadata.annotations}
        if reload_wanted(annotations, has_working_dir=bool(run.working_dir), default=default):
            out[(r.namespace, r.name)] = run.working_dir
    return out


def stamped(resources: Sequence[Resource], digests: Mapping[Key, str]) -> list[Resource]:
    """`resources` with the template of each Service and Configuration in `digests`
    annotated with its digest (`ami.dev/source-digest`); the rest as they are."""
    out: list[Resource] = []
    for r in resources:
        digest = digests.get((r.namespace, r.name))
        if digest is not None and isinstance(r, ks.Service | ks.Configuration):
            template = r.spec.template
            meta = template.metadata.model_copy(
                update={"annotations": {**template.metadata.annotations, SOURCE_DIGEST: digest}}
            )
            spec = r.spec.model_copy(
                update={"template": template.model_copy(update={"metadata": meta})}
            )
            r = r.model_copy(update={"spec": spec})
        out.append(r)
    return out
