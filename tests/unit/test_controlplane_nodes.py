"""The node agents' reports: when the first instances are no longer starting."""

from __future__ import annotations

import json
from pathlib import Path

from amimesh.config.store import Store
from amimesh.controlplane.nodes import Nodes, parse_report


def row(iid: str, state: str) -> dict[str, object]:
    return {"id": iid, "state": state, "ready": state == "ready"}


def test_settled_once_a_report_of_this_run_has_nothing_starting(tmp_path: Path) -> None:
    path = tmp_path / "nodes.json"
    # The last run's reports, taken back at start, say nothing about this run.
    path.write_text(json.dumps({"local": {"status": [row("a", "ready")]}}))
    nodes = Nodes(Store(), path)
    nodes.load()
    assert nodes.status_rows() == [row("a", "ready")]
    assert not nodes.settled()
    nodes.report("local", parse_report({"status": [row("a", "starting"), row("b", "ready")]}))
    assert not nodes.settled()
    nodes.report("local", parse_report({"status": [row("a", "backoff"), row("b", "ready")]}))
    assert nodes.settled()


def test_a_node_with_nothing_to_run_is_settled_by_its_first_report() -> None:
    nodes = Nodes(Store())
    assert not nodes.settled()
    nodes.report("local", parse_report({"status": []}))
    assert nodes.settled()
