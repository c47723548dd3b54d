"""docs/resources.md is generated from the models and must match them."""

from __future__ import annotations

from pathlib import Path

from amimesh.resources import schema_doc

DOC = Path(__file__).parents[2] / "docs" / "resources.md"


def test_docs_match_the_models() -> None:
    assert DOC.read_text(encoding="utf-8") == schema_doc.render(), (
        "docs/resources.md is stale; regenerate it with\n"
        "    .venv/bin/python -m amimesh.resources.schema_doc > docs/resources.md"
    )


def test_every_kind_and_not_yet_field_is_listed() -> None:
    text = schema_doc.render()
    for kind in ("Service", "Workload", "VirtualService", "DestinationRule", "ServiceEntry"):
        assert f"\n## {kind}\n" in text
    assert "| `spec.http[].match[].scheme` | - | not yet |" in text
    assert "| `spec.http[].route[].weight` | integer (>= 0, <= 2147483647) | yes |" in text
    assert "| `metadata.uid` | string | ignored |" in text
    assert "(not yet: DYNAMIC_DNS)" in text
