"""The waterfall of one trace: spans in call order, indented by depth, each with its
place on the trace's time line. Pure.

    rows = layout(spans)                 # spans as the API gives them (`span_json`)
    for r in rows:
        print("  " * r.depth + r.span["name"], bar(r, 40))

Order: each root (a span whose parent is not in the trace), then its children by start
time, depth first. `start` and `end` are fractions (0 to 1) of the trace's time, from
its first span's start to its last span's end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BAR = "█"


@dataclass(frozen=True)
class Row:
    span: Mapping[str, Any]
    depth: int
    start: float
    end: float


def _key(span: Mapping[str, Any]) -> tuple[int, str]:
    return int(span.get("start_unix_nano", 0)), str(span.get("span_id", ""))


def layout(spans: Sequence[Mapping[str, Any]]) -> list[Row]:
    """The rows of the waterfall of `spans` (each span once)."""
    if not spans:
        return []
    by_id = {str(s.get("span_id", "")): s for s in spans}
    children: dict[str, list[Mapping[str, Any]]] = {}
    roots: list[Mapping[str, Any]] = []
    for s in spans:
        parent = str(s.get("parent_span_id") or "")
        if parent and parent in by_id and parent != s.get("span_id"):
            children.setdefault(parent, []).append(s)
        else:
            roots.append(s)
    t0 = min(int(s.get("start_unix_nano", 0)) for s in spans)
    t1 = max(int(s.get("end_unix_nano", 0)) for s in spans)
    total = max(t1 - t0, 1)

    def fraction(ns: int) -> float:
        return min(1.0, max(0.0, (ns - t0) / total))

    out: list[Row] = []
    seen: set[int] = set()
    # A span in a parent cycle has no root above it: it starts a tree of its own.
    pending = sorted(roots, key=_key)
    rest = sorted(spans, key=_key)
    distinct = len({id(s) for s in spans})
    while pending or len(seen) < distinct:
        if not pending:
            pending = [next(s for s in rest if id(s) not in seen)]
        stack: list[tuple[Mapping[str, Any], int]] = [(s, 0) for s in reversed(pending)]
        pending = []
        while stack:
            span, depth = stack.pop()
            if id(span) in seen:
                continue
            seen.add(id(span))
            start = fraction(int(span.get("start_unix_nano", 0)))
            end = max(start, fraction(int(span.get("end_unix_nano", 0))))
            out.append(Row(span, depth, start, end))
            kids = sorted(children.get(str(span.get("span_id", "")), []), key=_key)
            stack.extend((k, depth + 1) for k in reversed(kids))
    return out


def bar(row: Row, width: int) -> str:
    """The row's span as a bar on a line of `width` columns (at least one column)."""
    if width < 1:
        return ""
    # Rounded first, so that 0.3 * 10 is 3 columns, not 4.
    first = min(width - 1, math.floor(round(row.start * width, 6)))
    last = max(first + 1, min(width, math.ceil(round(row.end * width, 6))))
    return " " * first + BAR * (last - first) + " " * (width - last)
