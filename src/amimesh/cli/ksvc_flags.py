"""`ami service create/update`'s flags, in `kn`'s words, as the Knative Service YAML
they stand for. Pure: values in, a Service (a dict, as `ami get ksvc -o json` prints
it) out, or `FlagError` naming the flag and why.

    flags = TemplateFlags(image="example.com/hello", cmd=("python3",), args=("app.py",))
    new_service("hello", "default", flags)              # what `create` applies
    updated_service(current, flags)                     # what `update` applies

What a flag means is what it means for `kn`: `--scale-min`/`--scale-max` are the
revision's `autoscaling.knative.dev/min-scale`/`max-scale` annotations,
`--concurrency-limit` its `containerConcurrency`, `--annotation` goes on the Service
and its revisions (autoscaling keys on the revisions only, where Knative reads them),
`--env`, `--annotation` on update set or (with `NAME-`) unset one entry, `--cmd` and
`--arg` replace the command and the arguments. The Knative rules themselves (ranges,
names, annotations) are the API's to check, with field paths.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

API_VERSION = "serving.knative.dev/v1"
AUTOSCALING = "autoscaling.knative.dev/"
MIN_SCALE = f"{AUTOSCALING}min-scale"
MAX_SCALE = f"{AUTOSCALING}max-scale"
# What the API adds to a Service it lists, that is not the user's to write back.
SERVER_FIELDS = ("status", "source")
SERVER_METADATA = ("creationTimestamp", "generation", "resourceVersion", "uid")


class FlagError(ValueError):
    """A flag's value that cannot be used: which flag, and why."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"{flag}: {message}")
        self.flag = flag


@dataclass(frozen=True)
class TemplateFlags:
    """The flags that change a Service's revision template; None (or empty): not given."""

    image: str | None = None
    cmd: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()  # NAME=value, or NAME- (update: unset)
    port: str | None = None  # [NAME:]PORT
    scale_min: int | None = None
    scale_max: int | None = None
    concurrency_limit: int | None = None
    revision_name: str | None = None
    annotations: tuple[str, ...] = ()  # KEY=value, or KEY- (update: unset)

    def given(self) -> bool:
        """Whether any flag was given: a new revision, if the template changes."""
        return any(getattr(self, f.name) not in (None, ()) for f in fields(self))


def pairs(values: Sequence[str], flag: str, *, unset: bool) -> tuple[dict[str, str], list[str]]:
    """`KEY=value` entries (the last of a key wins) and, when `unset` is allowed, the
    keys of `KEY-` entries."""
    found: dict[str, str] = {}
    gone: list[str] = []
    for value in values:
        key, eq, rest = value.partition("=")
        if eq and key:
            found[key] = rest
            gone = [g for g in gone if g != key]
        elif unset and not eq and value.endswith("-") and len(value) > 1:
            gone.append(value[:-1])
            found.pop(value[:-1], None)
        else:
            want = "NAME=value or NAME- (to unset)" if unset else "NAME=value"
            raise FlagError(f"{flag} {value!r}", f"want {want}")
    return found, gone


def port_of(value: str) -> dict[str, Any]:
    """`--port [NAME:]PORT` as a container port: `8080`, `h2c:8080`."""
    name, _, number = value.rpartition(":")
    try:
        port = int(number)
    except ValueError:
        raise FlagError(f"--port {value!r}", "want [NAME:]PORT, e.g. 8080 or h2c:8080") from None
    out: dict[str, Any] = {"containerPort": port}
    if name:
        out["name"] = name
    return out


def revision_name(service: str, value: str) -> str:
    """kn's `--revision-name`: `{{.Service}}` is the Service's name, and a name not
    starting with `SERVICE-` gets that prefix."""
    name = value.replace("{{.Service}}", service)
    if "{{" in name:
        raise FlagError(
            f"--revision-name {value!r}",
            "of kn's templates only {{.Service}} is supported here; the revisions' own "
            "names count the generation (SERVICE-00001, ...)",
        )
    if not name:
        raise FlagError("--revision-name", "must not be empty")
    return name if name.startswith(f"{service}-") else f"{service}-{name}"


def new_service(name: str, namespace: str, flags: TemplateFlags) -> dict[str, Any]:
    """What `ami service create NAME --image IMG ...` applies."""
    if not flags.image:
        raise FlagError(
            "--image",
            "required: the container's image (here --cmd runs, or what the image map "
            "knative-serving/ami-images gives the image)",
        )
    for flag, values in (("--env", flags.env), ("--annotation", flags.annotations)):
        pairs(values, flag, unset=False)  # no NAME- on create: nothing to unset
    service: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [{"image": flags.image}]}}},
    }
    return _edit(service, flags)


def updated_service(current: Mapping[str, Any], flags: TemplateFlags) -> dict[str, Any]:
    """`current` (as the API lists it) with the flags applied, ready to apply again:
    without what the API adds (`status`, `source`, `creationTimestamp`). A template
    change without `--revision-name` drops a name the template brought, so the new
    revision gets the next generated one."""
    service = {k: copy.deepcopy(v) for k, v in current.items() if k not in SERVER_FIELDS}
    meta = service.setdefault("metadata", {})
    for key in SERVER_METADATA:
        meta.pop(key, None)
    if flags.given() and flags.revision_name is None:
        service.get("spec", {}).get("template", {}).get("metadata", {}).pop("name", None)
    return _edit(service, flags)


def serving_container(pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The container that serves (the one with a port, as Knative picks it), else the
    first."""
    containers: list[dict[str, Any]] = pod_spec["containers"]
    return next((c for c in containers if c.get("ports")), containers[0])


def _edit(service: dict[str, Any], flags: TemplateFlags) -> dict[str, Any]:
    name = service["metadata"]["name"]
    spec = service.setdefault("spec", {})
    template = spec.setdefault("template", {})
    template_meta = template.setdefault("metadata", {})
    pod = template.setdefault("spec", {})
    if not pod.get("containers"):
        raise FlagError("--image", f"the Service {name} has no container to change")
    container = serving_container(pod)
    if flags.image is not None:
        container["image"] = flags.image
    if flags.cmd is not None:
        container["command"] = list(flags.cmd)
    if flags.args is not None:
        container["args"] = list(flags.args)
    if flags.env:
        container["env"] = _env(container.get("env") or [], flags.env)
    if flags.port is not None:
        container["ports"] = [port_of(flags.port)]
    if flags.concurrency_limit is not None:
        pod["containerConcurrency"] = flags.concurrency_limit
    scale = {MIN_SCALE: flags.scale_min, MAX_SCALE: flags.scale_max}
    annotations, unset = pairs(flags.annotations, "--annotation", unset=True)
    revision_annotations = dict(template_meta.get("annotations") or {})
    service_annotations = dict(service["metadata"].get("annotations") or {})
    for key in unset:
        revision_annotations.pop(key, None)
        service_annotations.pop(key, None)
    for key, value in annotations.items():
        revision_annotations[key] = value
        if not key.startswith(AUTOSCALING):  # Knative refuses them on the Service
            service_annotations[key] = value
    for key, number in scale.items():
        if number is not None:
            revision_annotations[key] = str(number)
    _set_or_drop(template_meta, "annotations", revision_annotations)
    _set_or_drop(service["metadata"], "annotations", service_annotations)
    if flags.revision_name is not None:
        template_meta["name"] = revision_name(name, flags.revision_name)
    if not template_meta:
        template.pop("metadata")
    return service


def _env(current: Sequence[Mapping[str, Any]], values: Sequence[str]) -> list[dict[str, Any]]:
    """The container's env with `--env` applied: a name set keeps its place."""
    found, gone = pairs(values, "--env", unset=True)
    out = [dict(e) for e in current if e.get("name") not in gone]
    for e in out:
        if e.get("name") in found:
            e.pop("valueFrom", None)
            e["value"] = found.pop(e["name"])
    out += [{"name": k, "value": v} for k, v in found.items()]
    return out


def _set_or_drop(where: dict[str, Any], key: str, value: Mapping[str, Any]) -> None:
    if value:
        where[key] = dict(value)
    else:
        where.pop(key, None)
