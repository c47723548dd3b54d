"""Tekton runs' status in the control plane: what the node agents report, kept across
restarts, served by the HTTP API (`api_pipelines`).

    runs = PipelineStatus(state_dir / "pipelineruns.json")
    runs.load()
    runs.report("local", [{"kind": "PipelineRun", "metadata": {...}, "status": {...}}])
    runs.objects(kind="PipelineRun", namespace="default")
    runs.cancelled(store, "PipelineRun", "default", "build-1")   # spec.status: Cancelled

The node agents run TaskRuns and PipelineRuns (`runtime/pipelines.py`); the control
plane only keeps what they say, each node's report replacing its last one, so a run
deleted there goes here too. A run whose node never reported it again (the node
restarted while it ran) keeps its last status until the node reports.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from amimesh.config.store import Store
from amimesh.resources import ParseResult
from amimesh.resources import tekton as tk
from amimesh.resources.meta import Resource

log = logging.getLogger(__name__)

STATUS_FILE = "pipelineruns.json"
MAX_RUNS = 10_000
MAX_FILE = 64 * 1024 * 1024
RUN_KINDS = ("PipelineRun", "TaskRun")
# What a node agent runs from: the runs, what they reference, and ConfigMaps
# (configMap workspaces).
CONFIG_KINDS = frozenset(
    [(tk.TEKTON_GROUP, k) for k in ("Task", "Pipeline", "TaskRun", "PipelineRun")]
    + [("", "ConfigMap")]
)


def secrets_for_runs(resources: Iterable[Resource]) -> set[tuple[str, str]]:
    """(namespace, name) of each Secret a TaskRun's or PipelineRun's workspace binds:
    the only Secrets whose values go to the node agents that run them."""
    out: set[tuple[str, str]] = set()
    for r in resources:
        if isinstance(r, tk.TaskRun | tk.PipelineRun):
            for b in r.spec.workspaces:
                if b.secret is not None:
                    out.add((r.namespace, b.secret.secretName))
    return out


CANCEL_STATUS = {"PipelineRun": "Cancelled", "TaskRun": "TaskRunCancelled"}


class BadReport(ValueError):
    pass


def parse_report(data: Any) -> list[dict[str, Any]]:
    """A node's report: {"runs": [object, ...]}, each a PipelineRun or TaskRun with
    metadata.name and metadata.namespace. Raises BadReport."""
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or len(runs) > MAX_RUNS:
        raise BadReport(f'body: want {{"runs": [...]}} with at most {MAX_RUNS} runs')
    for i, run in enumerate(runs):
        meta = run.get("metadata") if isinstance(run, dict) else None
        if (
            not isinstance(run, dict)
            or run.get("kind") not in RUN_KINDS
            or not isinstance(meta, dict)
            or not isinstance(meta.get("name"), str)
            or not isinstance(meta.get("namespace"), str)
        ):
            raise BadReport(f"runs[{i}]: want a PipelineRun or TaskRun with metadata")
    return runs


def run_key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (str(obj["kind"]), str(meta["namespace"]), str(meta["name"]))


class PipelineStatus:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._by_node: dict[str, dict[tuple[str, str, str], dict[str, Any]]] = {}

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            if self.path.stat().st_size > MAX_FILE:
                raise ValueError(f"larger than {MAX_FILE} bytes")
            data = json.loads(self.path.read_text())
            for node, runs in data.get("nodes", {}).items():
                self._by_node[str(node)] = {run_key(r): r for r in parse_report({"runs": runs})}
        except (OSError, ValueError, AttributeError) as e:
            log.error("pipelines: cannot read %s (%s): run status starts anew", self.path, e)

    def save(self) -> None:
        if self.path is None:
            return
        doc = {"nodes": {n: list(runs.values()) for n, runs in self._by_node.items()}}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f)
            tmp.replace(self.path)

    def report(self, node: str, runs: list[dict[str, Any]]) -> None:
        """A node's whole view of its runs, replacing its last."""
        for r in runs:
            annotations = r["metadata"].setdefault("annotations", {})
            if isinstance(annotations, dict):
                annotations["ami.dev/node"] = node
        self._by_node[node] = {run_key(r): r for r in runs}
        self.save()

    def known(self, node: str) -> list[dict[str, Any]]:
        """What `node` reported before: a node agent started again takes it back."""
        return list(self._by_node.get(node, {}).values())

    def objects(
        self, kind: str | None = None, namespace: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        out = []
        for runs in self._by_node.values():
            for (k, ns, n), obj in runs.items():
                if (kind and k != kind) or (namespace and ns != namespace) or (name and n != name):
                    continue
                out.append(obj)
        return sorted(
            out, key=lambda o: (str(o["metadata"].get("creationTimestamp") or ""), run_key(o))
        )

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects(kind, namespace, name)
        return found[0] if found else None


def cancelled(store: Store, kind: str, namespace: str, name: str) -> Resource | None:
    """Set a run's `spec.status` to Tekton's cancel value (as `tkn pipelinerun cancel`
    patches it), applied over the resource in force; None when there is no such run."""
    key = (kind, namespace, name)
    found = store.get(key)
    if not isinstance(found, tk.PipelineRun | tk.TaskRun):
        return None
    spec = found.spec.model_copy(update={"status": CANCEL_STATUS[kind]})
    updated = found.model_copy(update={"spec": spec})
    store.apply(ParseResult([updated], []))
    return updated
