"""Every resource as the API writes it (`ami get -o json`, the node agent's config,
the applied resources kept on disk) reads back as the same resource. (A Secret's
values are redacted in what the API serves; on disk they are kept as they are.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from amimesh.controlplane.api_json import resource_json
from amimesh.resources import parse_object
from amimesh.resources.fields import format_duration, parse_duration
from amimesh.resources.files import load_path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    {p.parent for p in (ROOT / "examples").rglob("*.yaml") if "tasks" not in p.parts}
    | {p.parent for p in (ROOT / "examples").rglob("tasks/*.yaml")}
    | {ROOT / "tests" / "unit" / "testdata" / "knative"}
)


@pytest.mark.parametrize("directory", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_written_resources_read_back_the_same(directory: Path) -> None:
    result = load_path(directory)
    assert result.resources, directory
    for r in result.resources:
        back = parse_object(resource_json(r, redact=False), "api")
        assert back.errors == [], back.errors
        assert back.resources == [r]


@pytest.mark.parametrize("seconds", [0.0, 1.0, 2.5, 0.25, 0.001, 0.0000015, 3600.0, 90.5])
def test_durations_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
