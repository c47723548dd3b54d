"""Bounds on YAML input, checked on the parser's events before any node is built. Pure.

A few hundred bytes of YAML can stand for billions of nodes (nested aliases, the
"billion laughs"; Kubernetes' API server had this flaw as CVE-2019-11253), and a deep
enough nesting exhausts the recursion that builds nodes. So every text is read once as
a stream of events, in constant memory, and refused at the first event that goes past
a limit; only a text that passes is composed and constructed. Aliases are counted as
the nodes they stand for: that count is known the moment an alias is read, since its
anchor's node is complete by then (an alias inside its own anchor is refused).

The limits hold per file, and per body of an API request. Real configuration stays far
below them: a Kubernetes object is at most 1.5 MiB, and nests about ten levels deep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import yaml
from yaml.composer import ComposerError
from yaml.error import Mark
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    NodeEvent,
    ScalarEvent,
)

MAX_BYTES = 32 * 1024 * 1024  # one file or request body, as UTF-8
MAX_DOCUMENTS = 1000  # `---`-separated documents in one file or request
MAX_DEPTH = 100  # mappings and lists inside one another
MAX_SCALAR = 1024 * 1024  # characters in one value (a key, a string, a number)
MAX_NODES = 250_000  # nodes in one file or request, an alias counting as what it names
MAX_ALIAS_NODES = 10_000  # of those, the nodes that aliases stand for

TOO_BIG = f"is larger than {MAX_BYTES} bytes (32 MiB), the most Ami reads from one source"

_STANDARD = "tag:yaml.org,2002:"
# The tags plain values resolve to (`!` asks for a string); any other is refused, Python's
# (`!!python/object/apply:...`) above all.
TAGS = frozenset(
    {"!"} | {_STANDARD + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}
)

_EXAMPLE = (
    "shop/bomb.yaml: document 0 (line 1): YAML refused at line 10, column 39: "
    f"aliases stand for more than {MAX_ALIAS_NODES} nodes"
)
# The "Limits on input" section of docs/resources.md (generated: see schema_doc).
DOC = f"""\
## Limits on input

Every way YAML enters Ami goes through one loader: config files and the watched
directory, `ami validate`, `ami analyze` and `ami apply` (which checks files before
sending them), and the bodies of the HTTP API's `apply` and `delete`. It reads a text
once as a stream of events and refuses it at the first thing past a limit, before
anything is built from it, so a hostile or broken text costs little whatever it asks
for (a few hundred bytes of nested aliases can stand for billions of nodes: Kubernetes'
API server had this flaw as CVE-2019-11253). Real configuration stays far below them.

| limit | value | per |
|---|---|---|
| size | {MAX_BYTES} bytes (32 MiB) | file or request body |
| documents | {MAX_DOCUMENTS} | file or request body |
| nesting of mappings and lists | {MAX_DEPTH} levels | document |
| length of one value (key, string, number) | {MAX_SCALAR} characters (1 MiB) | value |
| nodes, an alias counting as every node it names | {MAX_NODES} | file or request body |
| of those, nodes named by aliases | {MAX_ALIAS_NODES} | file or request body |

The text must be UTF-8. Only plain YAML is read: mappings, lists, strings, numbers,
booleans and null, with no tag other than those (`!!str`, `!!int`, `!!float`,
`!!bool`, `!!null`, `!!seq`, `!!map`) and `!`; `!!python/object:...`, `!!binary`,
`!!set`, and custom tags such as `!Ref` are refused. So are a key written twice in
one mapping, an alias inside the node it names, and an anchor defined twice.

A file larger than the limit is refused without being read, and so is an API body
whose `Content-Length` says so; one that does not say is read until the limit and no
further. A refusal is an error like any other, naming the file, the document and the
line where it starts, then the exact place:

    {_EXAMPLE}

Reading stops there: the documents before it load, none after it. The parser's own
limit on nesting (1000 levels, in libyaml) can speak first for a deep flow
collection (`[[[[...`): `invalid YAML at line 1, column 1001: exceeded maximum nesting depth`.
"""


class Refused(yaml.MarkedYAMLError):
    """Input past a limit, or YAML that Ami does not read (a tag); `problem` says which."""


def _mark(event: Event) -> Mark | None:
    """The event's start, as a pure-Python mark (libyaml's parser has its own type)."""
    m = event.start_mark
    return None if m is None else Mark("<yaml>", m.index, m.line, m.column, None, 0)


def _refuse(event: Event, problem: str) -> Refused:
    return Refused(problem=problem, problem_mark=_mark(event))


def show_tag(tag: str) -> str:
    """A tag as it is written: `!!python/object:x`, not `tag:yaml.org,2002:python/object:x`."""
    return "!!" + tag.removeprefix(_STANDARD) if tag.startswith(_STANDARD) else tag


@dataclass
class _Open:
    """A mapping or list being read: its anchor, and its nodes so far (itself included)."""

    anchor: str | None
    size: int = 1


class Guard:
    """Sees one text's events in order; `see` raises `Refused` at the first one past a limit.

    `starts` has, for each document started so far, the 1-based line where it starts
    (its first content, once read); `ended` says whether the latest one has ended.
    """

    def __init__(self) -> None:
        self.starts: list[int | None] = []
        self.ended = False
        self._at_root = False
        self._nodes = 0
        self._alias_nodes = 0
        self._open: list[_Open] = []
        self._anchors: dict[str, int] = {}  # anchor -> nodes it names, in this document

    @property
    def documents(self) -> int:
        return len(self.starts)

    def see(self, event: Event) -> None:
        if self._at_root and isinstance(event, NodeEvent) and event.start_mark is not None:
            self._at_root = False
            self.starts[-1] = event.start_mark.line + 1
        if isinstance(event, NodeEvent) and not isinstance(event, AliasEvent):
            self._anchor(event)
        if isinstance(event, DocumentStartEvent):
            self._document(event)
        elif isinstance(event, DocumentEndEvent):
            self.ended = True
        elif isinstance(event, CollectionStartEvent):
            self._tag(event.tag, event)
            self._count(1, event)
            self._open.append(_Open(event.anchor))
            if len(self._open) > MAX_DEPTH:
                raise _refuse(event, f"nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, CollectionEndEvent):
            done = self._open.pop()
            self._define(done.anchor, done.size)
        elif isinstance(event, ScalarEvent):
            self._tag(event.tag, event)
            if len(event.value) > MAX_SCALAR:
                raise _refuse(event, f"a value longer than {MAX_SCALAR} characters")
            self._count(1, event)
            self._define(event.anchor, 1)
        elif isinstance(event, AliasEvent):
            self._alias(event)

    def _document(self, event: DocumentStartEvent) -> None:
        mark = event.start_mark
        self.starts.append(None if mark is None else mark.line + (2 if event.explicit else 1))
        self.ended = False
        self._at_root = True
        if self.documents > MAX_DOCUMENTS:
            raise _refuse(event, f"more than {MAX_DOCUMENTS} documents")
        self._anchors.clear()  # an anchor names a node in its own document only

    def _anchor(self, event: NodeEvent) -> None:
        name = event.anchor
        if name is not None and (
            name in self._anchors or any(o.anchor == name for o in self._open)
        ):
            raise ComposerError(None, None, f"found duplicate anchor {name!r}", _mark(event))

    def _tag(self, tag: str | None, event: Event) -> None:
        if tag is not None and tag not in TAGS:
            raise _refuse(
                event,
                f"tag {show_tag(tag)} is not allowed: Ami reads plain YAML (mappings, lists, "
                "strings, numbers, booleans and null)",
            )

    def _count(self, nodes: int, event: Event) -> None:
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            raise _refuse(event, f"more than {MAX_NODES} nodes, aliases counted as what they name")

    def _define(self, anchor: str | None, size: int) -> None:
        if self._open:
            self._open[-1].size += size
        if anchor is not None:
            self._anchors[anchor] = size

    def _alias(self, event: AliasEvent) -> None:
        name = event.anchor or ""
        size = self._anchors.get(name)
        if size is None:
            if any(o.anchor == name for o in self._open):
                raise _refuse(event, f"alias *{name} is inside the node it names")
            raise ComposerError(None, None, f"found undefined alias {name!r}", _mark(event))
        self._alias_nodes += size
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise _refuse(event, f"aliases stand for more than {MAX_ALIAS_NODES} nodes")
        self._count(size, event)
        self._define(None, size)


@dataclass(frozen=True)
class Stop:
    """Where reading a text must stop: the document `index` (0-based), the line where
    that document starts (None before any), and the error."""

    index: int
    start: int | None
    error: yaml.YAMLError


def scan(next_event: Callable[[], Event | None], guard: Guard | None = None) -> Stop | None:
    """Read every event `next_event` gives (None ends them) through `guard`: None when the
    text is within the limits and is well-formed YAML, else where and why to stop."""
    guard = guard or Guard()
    try:
        while (event := next_event()) is not None:
            guard.see(event)
    except yaml.YAMLError as err:
        if guard.ended or not guard.starts:  # between documents: the next one is at fault
            return Stop(guard.documents, None, err)
        return Stop(guard.documents - 1, guard.starts[-1], err)
    return None
