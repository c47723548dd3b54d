"""Split YAML text into documents, each with its index and the line where it starts.

The loader is PyYAML's safe loader with two changes that match what Kubernetes does:
a key written twice in one mapping is an error (not "last one wins"), and timestamps stay
strings (`creationTimestamp: 2024-01-01T00:00:00Z` is text, not a datetime).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode


@dataclass(frozen=True)
class Document:
    index: int  # 0-based, counting every document the text has, empty ones too
    line: int  # 1-based line of the document's first content
    data: Any


@dataclass(frozen=True)
class SyntaxProblem:
    index: int  # the document being read when the problem was found
    line: int  # 1-based: where that document starts, or where the problem is
    message: str


class _Loader(yaml.SafeLoader):
    yaml_constructors = {
        **yaml.SafeLoader.yaml_constructors,
        "tag:yaml.org,2002:timestamp": yaml.SafeLoader.construct_yaml_str,
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


def documents(text: str) -> list[Document | SyntaxProblem]:
    """The documents of `text` in order, with a `SyntaxProblem` in place of a bad one.

    A duplicate key spoils only its own document; a syntax error stops the reading, so
    nothing after it is returned.
    """
    loader = _Loader(text)
    out: list[Document | SyntaxProblem] = []
    index = 0
    start: int | None = None
    try:
        while loader.check_node():
            event = loader.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
            start = event.start_mark.line + (2 if getattr(event, "explicit", False) else 1)
            node: Node | None = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else start
            try:
                out.append(Document(index, line, loader.construct_document(node)))
            except ConstructorError as err:
                out.append(_problem(err, index, line))
            index += 1
            start = None
    except yaml.MarkedYAMLError as err:
        out.append(_problem(err, index, start))
    finally:
        loader.dispose()
    return out


def _problem(err: yaml.MarkedYAMLError, index: int, start: int | None) -> SyntaxProblem:
    mark = err.problem_mark or err.context_mark
    what = err.problem or err.context or "cannot be read"
    if mark is None:
        return SyntaxProblem(index, start or 1, f"invalid YAML: {what}")
    line = mark.line + 1
    where = f"line {line}, column {mark.column + 1}"
    return SyntaxProblem(index, start or line, f"invalid YAML at {where}: {what}")
