"""What the node agents report: each node's registered instances and the status of
everything it runs.

    nodes = Nodes(store, state_dir / "nodes.json")
    nodes.load()                       # before xDS serves: the endpoints of the last run
    nodes.report("local", body)        # PUT /api/v1/nodes/local: the node's whole view

A node's report replaces its previous one, so a node agent that reconnects after an
outage (its own or the control plane's) puts everything right with one request. The
reports are kept on disk: a control plane started again serves the same endpoints
from its first push, instead of none until the node agent reports again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amimesh.config.store import Store
from amimesh.controlplane import api_json
from amimesh.model.snapshot import Instance

log = logging.getLogger(__name__)

MAX_STATUS_ROWS = 10_000


@dataclass(frozen=True)
class NodeReport:
    instances: tuple[Instance, ...] = ()
    status: tuple[dict[str, Any], ...] = ()
    gateway_urls: tuple[str, ...] = ()
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "instances": [api_json.instance_body(i) for i in self.instances],
            "status": list(self.status),
            "gateway_urls": list(self.gateway_urls),
            "time": self.time,
        }


def parse_report(data: Any) -> NodeReport:
    """A node's report from a request body; raises api_json.BadBody."""
    if not isinstance(data, dict):
        raise api_json.BadBody(['body: want {"instances": [...], "status": [...]}'])
    raw_instances = data.get("instances", [])
    status = data.get("status", [])
    urls = data.get("gateway_urls", [])
    problems: list[str] = []
    if not isinstance(raw_instances, list):
        problems.append("instances: want a list")
        raw_instances = []
    if not isinstance(status, list) or not all(isinstance(r, dict) for r in status):
        problems.append("status: want a list of objects")
        status = []
    if len(status) > MAX_STATUS_ROWS:
        problems.append(f"status: more than {MAX_STATUS_ROWS} rows")
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        problems.append("gateway_urls: want a list of strings")
        urls = []
    instances = []
    for i, item in enumerate(raw_instances):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            problems.append(f"instances[{i}].id: want a string")
            continue
        body = {k: v for k, v in item.items() if k != "id"}
        try:
            instances.append(api_json.instance_from_json(item["id"], body))
        except api_json.BadBody as err:
            problems += [f"instances[{i}].{e}" for e in err.errors]
    if problems:
        raise api_json.BadBody(problems)
    return NodeReport(tuple(instances), tuple(status), tuple(urls))


class Nodes:
    """The reports of every node agent, their instances registered in `store`."""

    def __init__(self, store: Store, path: Path | None = None) -> None:
        self.store = store
        self.path = path
        self._reports: dict[str, NodeReport] = {}
        self._reported = False  # a report came in this run (not only loaded)

    def load(self) -> None:
        """Take back the reports of the last run (their instances registered again)."""
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            reports = {str(n): parse_report(r) for n, r in data.items()}
        except (OSError, ValueError, AttributeError, api_json.BadBody) as e:
            log.warning("cannot read %s (%s): waiting for the nodes to report", self.path, e)
            return
        for node, report in reports.items():
            self._set(node, report)
        log.info("node reports of the last run: %s", ", ".join(sorted(reports)) or "none")

    def report(self, node: str, report: NodeReport) -> None:
        self._reported = True
        self._set(node, report)
        self._save()

    def _set(self, node: str, report: NodeReport) -> None:
        old = self._reports.get(node)
        self._reports[node] = report
        self.store.replace_instances([i.id for i in old.instances] if old else [], report.instances)

    def settled(self) -> bool:
        """Whether a node agent has reported in this run and no instance of any is
        starting (the first config's instances are up, or failed)."""
        if not self._reported:
            return False
        return not any(row.get("state") == "starting" for row in self.status_rows() or ())

    def status_rows(self) -> list[dict[str, Any]] | None:
        """Every node's instance status rows; None before any node reported."""
        if not self._reports:
            return None
        return [row for n in sorted(self._reports) for row in self._reports[n].status]

    def gateway_urls(self) -> tuple[str, ...]:
        return tuple(u for n in sorted(self._reports) for u in self._reports[n].gateway_urls)

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        data = {n: r.to_json() for n, r in self._reports.items()}
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            tmp.replace(self.path)
