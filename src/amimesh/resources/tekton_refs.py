"""Tekton's variables (`$(params.x)`, `$(tasks.T.results.R)`, ...) and the pipeline
graph they and `runAfter` make. Pure; shared by the checks and `amimesh.pipelines`.

    for ref in variables("echo $(params.greeting) > $(results.out.path)"):
        ref.root, ref.parts, ref.index     # "params", ("greeting",), None

A variable is `$(` root, then `.name` or `["name"]` / `['name']` parts (a name with a
dot needs the brackets), then at most one `[*]` or `[N]`, then `)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_VARIABLE = re.compile(r"\$\(([^()]*)\)")
_ROOT = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_DOTTED = re.compile(r"\.([^.\[\]()]+)")
_BRACKETED = re.compile(r"""\[(?:"([^"]*)"|'([^']*)')\]""")
_INDEX = re.compile(r"\[(\*|[0-9]+)\]$")


@dataclass(frozen=True)
class Variable:
    """One `$(...)` in a string: `text` as written, `key` normalized (`params.a.b`)."""

    text: str
    root: str
    parts: tuple[str, ...]
    index: str | None  # "*", "0", ... or None

    @property
    def key(self) -> str:
        return ".".join((self.root, *self.parts))

    @property
    def result_ref(self) -> tuple[str, str] | None:
        """(task, result) for `$(tasks.T.results.R...)`, else None."""
        if self.root == "tasks" and len(self.parts) >= 3 and self.parts[1] == "results":
            return self.parts[0], self.parts[2]
        return None

    @property
    def param(self) -> str | None:
        return self.parts[0] if self.root == "params" and self.parts else None


def parse_variable(text: str) -> Variable | None:
    """The variable `$(expr)` names, or None when `expr` is not one Tekton reads."""
    expr = text[2:-1] if text.startswith("$(") and text.endswith(")") else text
    m = _ROOT.match(expr)
    if m is None:
        return None
    root, rest = m.group(0), expr[m.end() :]
    index: str | None = None
    tail = _INDEX.search(rest)
    if tail is not None and not _BRACKETED.fullmatch(rest[tail.start() :]):
        index, rest = tail.group(1), rest[: tail.start()]
    parts: list[str] = []
    while rest:
        dotted = _DOTTED.match(rest)
        if dotted is not None:
            parts.append(dotted.group(1))
            rest = rest[dotted.end() :]
            continue
        bracketed = _BRACKETED.match(rest)
        if bracketed is None:
            return None
        parts.append(bracketed.group(1) if bracketed.group(1) is not None else bracketed.group(2))
        rest = rest[bracketed.end() :]
    if not parts:
        return None
    return Variable(f"$({expr})", root, tuple(parts), index)


def variables(text: str) -> Iterator[Variable]:
    """Every variable Tekton would read in `text`, in order."""
    for m in _VARIABLE.finditer(text):
        v = parse_variable(m.group(0))
        if v is not None:
            yield v


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a param value, a list or a mapping (values only)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings_in(item)


def result_refs(texts: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(task, result) of every `$(tasks.T.results.R)` in `texts`."""
    for text in texts:
        for v in variables(text):
            ref = v.result_ref
            if ref is not None:
                yield ref


@dataclass(frozen=True)
class Node:
    """A pipeline task as the graph sees it: its name, what runs it first."""

    name: str
    run_after: tuple[str, ...]
    result_tasks: tuple[str, ...]

    @property
    def deps(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for name in (*self.run_after, *self.result_tasks):
            seen.setdefault(name, None)
        return tuple(seen)


def graph_problem(nodes: Sequence[Node]) -> str | None:
    """Tekton's error for a graph it cannot build (a dependency that is not a task,
    then a cycle), or None."""
    names = {n.name for n in nodes}
    for n in nodes:
        for dep in n.deps:
            if dep not in names:
                return f"task {n.name} depends on {dep} but {dep} wasn't present in Pipeline"
    remaining = {n.name: set(n.deps) for n in nodes}
    ready = [name for name, deps in remaining.items() if not deps]
    while ready:
        done = ready.pop()
        del remaining[done]
        for name, deps in remaining.items():
            if done in deps:
                deps.discard(done)
                if not deps:
                    ready.append(name)
    if not remaining:
        return None
    first = min(remaining)
    names_of = ", ".join(f'"{d}"' for d in sorted(remaining[first]))
    return f'cycle detected; task "{first}" depends on {names_of}'


def order(nodes: Sequence[Node]) -> list[str]:
    """The tasks in an order that runs each after its dependencies (graph must be valid)."""
    done: list[str] = []
    placed: set[str] = set()
    pending = list(nodes)
    while pending:
        rest = []
        for n in pending:
            if all(d in placed for d in n.deps):
                done.append(n.name)
                placed.add(n.name)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError("the graph has a cycle")
        pending = rest
    return done
