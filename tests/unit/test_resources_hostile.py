"""Hostile YAML is refused by the one loader, early and cheaply, with file, document and line."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from amimesh.cli import validate
from amimesh.resources import load_path, parse_bytes, parse_documents
from amimesh.resources.yaml_limits import (
    MAX_ALIAS_NODES,
    MAX_BYTES,
    MAX_DEPTH,
    MAX_DOCUMENTS,
    MAX_NODES,
    MAX_SCALAR,
    TOO_BIG,
)
from tests import hostile_yaml as hostile

SOURCE = "in.yaml"


def errors(text: str | bytes) -> list[str]:
    result = parse_bytes(text, SOURCE) if isinstance(text, bytes) else parse_documents(text, SOURCE)
    return [str(e) for e in result.errors]


@pytest.mark.parametrize("name", sorted(hostile.HOSTILE))
def test_each_hostile_document_gets_its_error(name: str) -> None:
    content, error = hostile.HOSTILE[name]
    result = parse_bytes(content, name)
    assert [str(e) for e in result.errors] == [f"{name}: {error}"]
    assert result.resources == []


def test_alias_bomb_is_refused_while_reading_with_little_memory() -> None:
    assert len(hostile.BOMB) < 640
    tracemalloc.start()
    try:
        result = parse_documents(hostile.BOMB, SOURCE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Refused at line 10 of 13, the fifth level (9**5 nodes), before the text is read to
    # its end; and nothing the size of the expansion was ever allocated.
    assert [str(e) for e in result.errors] == [f"{SOURCE}: {hostile.BOMB_ERROR}"]
    assert result.resources == []
    assert peak < 1024 * 1024


def test_aliases_within_the_limit_load() -> None:
    small = hostile.alias_bomb(levels=3, fan=3, name="small")  # 27 strings
    result = parse_documents(small, SOURCE)
    assert result.errors == []
    [service] = result.resources
    assert service.metadata.managedFields is not None
    assert len(service.metadata.managedFields[0]["top"]) == 3


def test_alias_expansion_counts_over_the_whole_text() -> None:
    # 3414 nodes named by aliases per document: two are fine, the third goes past 10 000.
    docs = [hostile.alias_bomb(levels=4, fan=6, name=f"s{i}") for i in range(3)]
    assert errors("---\n".join(docs[:2])) == []
    result = parse_documents("---\n".join(docs), SOURCE)
    assert [r.ref for r in result.resources] == ["Service/default/s0", "Service/default/s1"]
    assert [str(e) for e in result.errors] == [
        f"{SOURCE}: document 2 (line 27): YAML refused at line 36, column 36: "
        f"aliases stand for more than {MAX_ALIAS_NODES} nodes"
    ]


def test_merge_keys_count_what_they_merge() -> None:
    lines = ["a0: &a0 {k: v}"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 6)]
    lines.append("m: {<<: *a5, x: 1}")
    [error] = errors("\n".join(lines) + "\n")
    assert error.endswith(f"aliases stand for more than {MAX_ALIAS_NODES} nodes")
    merged = hostile.service("merged", "  labels: &l {app: a}\n  annotations: {<<: *l, b: c}\n")
    result = parse_documents(merged, SOURCE)
    assert result.errors == []
    assert result.resources[0].metadata.annotations == {"app": "a", "b": "c"}


def test_an_alias_inside_its_own_anchor_or_undefined_or_an_anchor_twice() -> None:
    assert errors("a: &x [1, *x]\n") == [
        f"{SOURCE}: document 0 (line 1): YAML refused at line 1, column 11: "
        "alias *x is inside the node it names"
    ]
    assert errors("a: *nowhere\n") == [
        f"{SOURCE}: document 0 (line 1): invalid YAML at line 1, column 4: "
        "found undefined alias 'nowhere'"
    ]
    assert errors("a: &x 1\nb: &x 2\n") == [
        f"{SOURCE}: document 0 (line 1): invalid YAML at line 2, column 4: "
        "found duplicate anchor 'x'"
    ]


def test_deep_nesting_is_an_error_not_a_recursion_error() -> None:
    assert errors(hostile.DEEP) == [f"{SOURCE}: {hostile.DEEP_ERROR}"]
    assert errors(hostile.DEEP_BLOCK) == [f"{SOURCE}: {hostile.DEEP_BLOCK_ERROR}"]
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert "refused" not in " ".join(errors(at_limit))
    [error] = errors("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert error.endswith(f"nested more than {MAX_DEPTH} levels deep")


def test_ami_validate_reports_deep_nesting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "deep.yaml").write_text(hostile.DEEP)
    (tmp_path / "bomb.yaml").write_text(hostile.BOMB)
    assert validate.run([tmp_path]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"error: {tmp_path / 'bomb.yaml'}: {hostile.BOMB_ERROR}",
        f"error: {tmp_path / 'deep.yaml'}: {hostile.DEEP_ERROR}",
        "2 error(s); 0 resource(s) valid",
    ]


def test_a_huge_value_is_refused() -> None:
    at_limit = hostile.service("big", f"  annotations: {{note: {'x' * MAX_SCALAR}}}\n")
    assert errors(at_limit) == []
    over = hostile.service("big", f"  annotations: {{note: {'x' * (MAX_SCALAR + 1)}}}\n")
    assert errors(over) == [
        f"{SOURCE}: document 0 (line 1): YAML refused at line 5, column 23: "
        f"a value longer than {MAX_SCALAR} characters"
    ]


def test_too_many_documents() -> None:
    assert errors("---\n" * MAX_DOCUMENTS) == []
    result = parse_documents(hostile.service("first") + "---\n" * MAX_DOCUMENTS, SOURCE)
    assert [str(e) for e in result.errors] == [
        f"{SOURCE}: document {MAX_DOCUMENTS} (line {MAX_DOCUMENTS + 8}): YAML refused at "
        f"line {MAX_DOCUMENTS + 7}, column 1: more than {MAX_DOCUMENTS} documents"
    ]
    assert [r.ref for r in result.resources] == ["Service/default/first"]


def test_too_many_nodes() -> None:
    [error] = errors("[" + "a," * MAX_NODES + "]")
    assert error == (
        f"{SOURCE}: document 0 (line 1): YAML refused at line 1, column {2 * MAX_NODES}: "
        f"more than {MAX_NODES} nodes, aliases counted as what they name"
    )


def test_too_large_is_refused_before_reading(tmp_path: Path) -> None:
    assert errors(b" " * (MAX_BYTES + 1)) == [f"{SOURCE}: {TOO_BIG}"]
    assert errors("#" + "é" * (MAX_BYTES // 2)) == [f"{SOURCE}: {TOO_BIG}"]  # 2 bytes each
    sparse = tmp_path / "huge.yaml"
    with sparse.open("wb") as f:
        f.truncate(64 * MAX_BYTES)  # 2 GiB of nothing: never read
    assert [str(e) for e in load_path(sparse).errors] == [f"{sparse}: {TOO_BIG}"]


def test_invalid_utf8_and_lone_surrogates() -> None:
    assert errors(b"a: 1\n---\nb: \xff\xfe\n") == [
        f"{SOURCE}: document 1 (line 3): is not UTF-8 text: byte 0xff at line 3, column 4"
    ]
    assert errors(b"\xff\xfea\x00:\x00") == [
        f"{SOURCE}: document 0 (line 1): is not UTF-8 text: byte 0xff at line 1, column 1"
    ]
    # What a leniently decoded stdin holds for a bad byte.
    surrogate = b"a: 1\nb: \xff\n".decode("utf-8", "surrogateescape")
    assert errors(surrogate) == [
        f"{SOURCE}: document 0 (line 1): is not UTF-8 text: character '\\udcff' at line 2"
    ]
    assert errors("\ufeff" + hostile.service("bom")) == []  # a byte order mark is fine


def test_duplicate_keys_anywhere() -> None:
    assert errors(hostile.DUPLICATE_KEY) == [f"{SOURCE}: {hostile.DUPLICATE_KEY_ERROR}"]
    twice = hostile.service("web").replace("spec:", "spec:\n  type: ClusterIP\nspec:", 1)
    assert errors(twice) == [
        f'{SOURCE}: document 0 (line 1): invalid YAML at line 7, column 1: key "spec" is '
        "written twice"
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!python/object/apply:os.system ['touch {marker}']", "!!python/object/apply:os.system"),
        ("!!python/name:os.system", "!!python/name:os.system"),
        ("!!python/object/new:subprocess.Popen [['touch', '{marker}']]", None),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {a, b}", "!!set"),
        ("!Ref other", "!Ref"),
        ("!<tag:example.com,2024:thing> x", "tag:example.com,2024:thing"),
    ],
)
def test_tags_other_than_plain_ones_are_refused(
    value: str, shown: str | None, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    text = hostile.service("tagged", f"  annotations:\n    a: {value}\n")
    [error] = errors(text.replace("{marker}", str(marker)))
    assert error.startswith(
        f"{SOURCE}: document 0 (line 1): YAML refused at line 6, column 8: tag "
    )
    assert f"tag {shown or '!!python/object/new:subprocess.Popen'} is not allowed" in error
    assert not marker.exists()


def test_a_tag_directive_cannot_smuggle_a_python_tag(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    directive = "%TAG !p! tag:yaml.org,2002:python/\n---\n"
    text = directive + f"a: !p!object/apply:os.system ['touch {marker}']\n"
    [error] = errors(text)
    assert "tag !!python/object/apply:os.system is not allowed" in error
    assert not marker.exists()


def test_plain_tags_still_work() -> None:
    text = hostile.service("tags", "  labels: {a: !!str 1}\n  annotations: !!map {b: !!str c}\n")
    result = parse_documents(text, SOURCE)
    assert result.errors == []
    assert result.resources[0].metadata.labels == {"a": "1"}


def test_documents_before_a_refusal_still_load_and_none_after() -> None:
    text = hostile.service("before") + "---\n" + hostile.BOMB + "---\n" + hostile.service("after")
    result = parse_documents(text, SOURCE)
    assert [r.ref for r in result.resources] == ["Service/default/before"]
    assert [e.document for e in result.errors] == [1]


@pytest.mark.parametrize("example", ["mesh", "shop/mesh"])
def test_the_examples_are_far_inside_the_limits(example: str) -> None:
    result = load_path(Path(__file__).parents[2] / "examples" / example)
    assert result.errors == []
    assert result.resources
