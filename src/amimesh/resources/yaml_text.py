"""Split YAML text into documents, each with its index and the line where it starts.

This is the one way YAML enters Ami. A text is first read as events through
`yaml_limits.Guard`, which refuses it at the first thing past a limit (size, documents,
depth, nodes, aliases, value length, tags) before anything is built from it; only the
documents before that point are then composed and constructed.

The loader is PyYAML's safe loader (libyaml's parser when PyYAML has it, the same rules
either way) with two changes that match what Kubernetes does: a key written twice in
one mapping is an error (not "last one wins"), and timestamps stay strings
(`creationTimestamp: 2024-01-01T00:00:00Z` is text, not a datetime).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode

from amimesh.resources import yaml_limits

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml: slower, same rules
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


# What YAML 1.1 allows in a text: tab, line breaks, printable Unicode (no surrogates).
_NOT_YAML = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Document:
    index: int  # 0-based, counting every document the text has, empty ones too
    line: int  # 1-based line of the document's first content
    data: Any


@dataclass(frozen=True)
class SyntaxProblem:
    """Why reading stopped. `index` is the document being read (None: the whole text is
    refused), `line` where that document starts, or where the problem is."""

    index: int | None
    line: int | None
    message: str


class _Strict(SafeConstructor):
    yaml_constructors = {
        **SafeConstructor.yaml_constructors,
        "tag:yaml.org,2002:timestamp": SafeConstructor.construct_yaml_str,
    }

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f'key "{key_node.value}" is written twice',
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Loader(_Strict, _SafeLoader):
    pass


def documents_in_bytes(data: bytes) -> list[Document | SyntaxProblem]:
    """`documents` of UTF-8 `data`; larger than `MAX_BYTES` or not UTF-8 is refused whole."""
    if len(data) > yaml_limits.MAX_BYTES:
        return [SyntaxProblem(None, None, yaml_limits.TOO_BIG)]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        where = f"byte 0x{data[err.start]:02x} at line {line}, column {column}"
        return [_bad_text(data[: err.start].decode("utf-8"), f"is not UTF-8 text: {where}")]
    return documents(text)


def documents(text: str) -> list[Document | SyntaxProblem]:
    """The documents of `text` in order, with a `SyntaxProblem` in place of a bad one.

    A duplicate key spoils only its own document; a syntax error or a limit stops the
    reading, so nothing after it is returned.
    """
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as err:  # a lone surrogate, from text decoded leniently
        line = text.count("\n", 0, err.start) + 1
        where = f"character {text[err.start]!r} at line {line}"
        return [_bad_text(text[: err.start], f"is not UTF-8 text: {where}")]
    if size > yaml_limits.MAX_BYTES:
        return [SyntaxProblem(None, None, yaml_limits.TOO_BIG)]
    if (bad := _NOT_YAML.search(text)) is not None:
        at = bad.start()
        line, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        what = f"control character U+{ord(text[at]):04X} is not allowed"
        return [_bad_text(text[:at], f"invalid YAML at line {line}, column {column}: {what}")]
    guard = yaml_limits.Guard()
    stop = _check(text, guard)
    count = guard.documents if stop is None else stop.index
    out: list[Document | SyntaxProblem] = []
    loader = _Loader(text)
    try:
        for index, start in enumerate(guard.starts[:count]):
            try:
                node: Node | None = loader.get_node() if loader.check_node() else None
            except yaml.YAMLError as err:  # e.g. an anchor defined twice
                out.append(_problem(err, index, start))
                return out
            line = node.start_mark.line + 1 if node is not None else start or 1
            try:
                out.append(Document(index, line, loader.construct_document(node)))
            except ConstructorError as err:
                out.append(_problem(err, index, line))
    finally:
        loader.dispose()
    if stop is not None:
        out.append(_problem(stop.error, stop.index, stop.start))
    return out


def _check(text: str, guard: yaml_limits.Guard) -> yaml_limits.Stop | None:
    """Read `text` once as events, through `guard`."""
    loader = _Loader(text)
    try:
        return yaml_limits.scan(loader.get_event, guard)
    finally:
        loader.dispose()


def _bad_text(before: str, message: str) -> SyntaxProblem:
    """The problem for text that cannot be YAML where `before` ends."""
    if (bad := _NOT_YAML.search(before)) is not None:
        before = before[: bad.start()]
    guard = yaml_limits.Guard()
    _check(before, guard)  # only to learn which document the bad character is in
    start = guard.starts[-1] if guard.starts else None
    line = start or before.count("\n") + 1
    return SyntaxProblem(max(guard.documents - 1, 0), line, message)


def _problem(err: yaml.YAMLError, index: int, start: int | None) -> SyntaxProblem:
    if not isinstance(err, yaml.MarkedYAMLError):
        return SyntaxProblem(index, start or 1, f"invalid YAML: {err}")
    mark = err.problem_mark or err.context_mark
    what = err.problem or err.context or "cannot be read"
    kind = "YAML refused" if isinstance(err, yaml_limits.Refused) else "invalid YAML"
    if mark is None:
        return SyntaxProblem(index, start or 1, f"{kind}: {what}")
    line = mark.line + 1
    where = f"line {line}, column {mark.column + 1}"
    return SyntaxProblem(index, start or line, f"{kind} at {where}: {what}")
