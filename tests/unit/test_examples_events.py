"""examples/events validates, and its triggers and sources name what it defines."""

from __future__ import annotations

from pathlib import Path

from amimesh.eventing.expand import reference_problems
from amimesh.resources import load_path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "events"


def test_the_events_example_is_valid_and_complete() -> None:
    result = load_path(EXAMPLE / "mesh")
    assert result.errors == []
    kinds = {r.KIND for r in result.resources}
    assert {"Broker", "Trigger", "PingSource", "SinkBinding", "Workload"} <= kinds
    assert reference_problems(result.resources) == []
