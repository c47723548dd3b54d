"""Intercepts, pure: a process of a developer's terminal in the place of a workload
(docs/devloop.md).

An intercept is one more instance of the workload: the control plane writes its
Workload (`intercept_workload`: the workload's labels, service account, ports, env and
probe, plus `ami.dev/intercept: ID`), the node agent runs its Envoy with the
workload's identity, and the developer's process is its app. How the mesh routes to it:

- with a header (`ami.dev/intercept-header: name=value`), only requests carrying it:
  every caller's route to the workload's services gets a copy ahead of it that
  matches the header and goes to the intercept's own subset (`intercept-ID`), and the
  intercept's endpoint is in no other cluster;
- without one (`ami.dev/intercept-mode: all`), every request: while the intercept is
  ready, its endpoint is the only one of those services.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from amimesh.model.selection import selects
from amimesh.resources.workload import RELOAD, Workload

INTERCEPT_LABEL = "ami.dev/intercept"  # its id, on the intercept's Workload and endpoints
MODE_LABEL = "ami.dev/intercept-mode"  # "header" or "all"
HEADER_ANNOTATION = "ami.dev/intercept-header"  # name=value
PORT_ANNOTATION = "ami.dev/intercept-port"  # the developer's process listens there
OF_ANNOTATION = "ami.dev/intercept-of"  # the intercepted workload's name
SUBSET_PREFIX = "intercept-"
# What runs in the app's place under the node agent: the developer's process is the app.
STAND_IN = ("sleep", "infinity")
# An HTTP header name (RFC 9110 token, lower case as Envoy sees it) and a value.
_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_HEADER_VALUE = re.compile(r"^[\x21-\x7e]([\x20-\x7e]{0,254}[\x21-\x7e])?$")


class InterceptError(ValueError):
    """An intercept that cannot be made as asked."""


@dataclass(frozen=True)
class Intercept:
    """One intercept of a service: its id and the header that selects it (None: all)."""

    id: str
    workload: str
    namespace: str
    header: tuple[str, str] | None

    @property
    def subset(self) -> str:
        return SUBSET_PREFIX + self.id


def parse_header(text: str) -> tuple[str, str]:
    """`x-dev=alice` → ("x-dev", "alice"); the name lower-cased, as Envoy matches it."""
    name, sep, value = text.partition("=")
    name = name.strip().lower()
    if not sep or not _HEADER_NAME.match(name):
        raise InterceptError(f"--header {text!r}: want NAME=VALUE with an HTTP header name")
    if not _HEADER_VALUE.match(value):
        raise InterceptError(f"--header {text!r}: the value must be 1-256 printable characters")
    if name.startswith(":") or name in ("host", "content-length", "transfer-encoding"):
        raise InterceptError(f"--header {text!r}: {name} cannot select an intercept")
    return name, value


def intercept_name(workload: str, intercept_id: str) -> str:
    return f"{workload}-intercept-{intercept_id}"


def intercept_workload(
    target: Workload, intercept_id: str, header: tuple[str, str] | None, port: int | None
) -> dict[str, Any]:
    """The Workload of an intercept of `target` (as YAML would say it): everything of
    the target but its replicas (one) and its app (a stand-in: the developer's process
    takes its ports), labelled with the intercept."""
    spec = target.spec.model_dump(mode="json", exclude_none=True)
    spec.update(replicas=1, command=list(STAND_IN), args=[], restartPolicy="Always")
    labels = {
        **target.metadata.labels,
        INTERCEPT_LABEL: intercept_id,
        MODE_LABEL: "header" if header else "all",
    }
    annotations = {
        k: v for k, v in target.metadata.annotations.items() if not k.startswith("ami.dev/inter")
    }
    annotations.update({OF_ANNOTATION: target.name, RELOAD: "false"})
    if header is not None:
        annotations[HEADER_ANNOTATION] = f"{header[0]}={header[1]}"
    if port is not None:
        annotations[PORT_ANNOTATION] = str(port)
    return {
        "apiVersion": "ami.dev/v1alpha1",
        "kind": "Workload",
        "metadata": {
            "name": intercept_name(target.name, intercept_id),
            "namespace": target.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }


def intercept_of(w: Workload) -> Intercept | None:
    """The intercept a Workload is, if it is one."""
    intercept_id = w.metadata.labels.get(INTERCEPT_LABEL)
    if not intercept_id:
        return None
    header = None
    text = w.metadata.annotations.get(HEADER_ANNOTATION)
    if text:
        try:
            header = parse_header(text)
        except InterceptError:
            return None
    target = w.metadata.annotations.get(OF_ANNOTATION, w.name)
    return Intercept(intercept_id, target, w.namespace, header)


def fixed_port(annotations: Mapping[str, str]) -> int | None:
    """The port an intercept's process listens on, when the developer chose it."""
    text = annotations.get(PORT_ANNOTATION, "")
    if text.isascii() and text.isdigit() and 0 < int(text) < 65536:
        return int(text)
    return None


def by_service(
    workloads: Iterable[Workload], selectors: Mapping[str, tuple[str, Mapping[str, str]]]
) -> dict[str, tuple[Intercept, ...]]:
    """hostname → the header intercepts of the workloads its Service selects
    (`selectors`: hostname → (namespace, selector))."""
    out: dict[str, list[Intercept]] = {}
    for w in workloads:
        icpt = intercept_of(w)
        if icpt is None or icpt.header is None:
            continue
        for host, (ns, selector) in selectors.items():
            if ns == w.namespace and selector and selects(selector, w.metadata.labels):
                out.setdefault(host, []).append(icpt)
    return {h: tuple(sorted(v, key=lambda i: i.id)) for h, v in sorted(out.items())}


def visible(labels_of: Iterable[Mapping[str, str]]) -> list[bool]:
    """Which endpoints (by their labels) plain traffic reaches: while an intercept of
    mode `all` is among them, it alone; else every endpoint but intercepts'."""
    labels = list(labels_of)
    exclusive = [lb.get(MODE_LABEL) == "all" and INTERCEPT_LABEL in lb for lb in labels]
    if any(exclusive):
        return exclusive
    return [INTERCEPT_LABEL not in lb for lb in labels]
