"""Glob patterns as Argo CD matches a directory Application's `include` and `exclude`
(gobwas/glob compiled with no separator). Pure.

    matches("{*.yml,*.yaml}", "web/vs.yaml")   # True: `*` crosses `/` here

`*` and `**` match any run of characters, `/` included; `?` one character; `[abc]`,
`[a-z]` and `[!abc]` one character of (or not of) a class; `{a,b}` any alternative,
nested ones too; a backslash makes the next character plain.
"""

from __future__ import annotations

import functools
import re

MAX_PATTERN = 1024


class GlobError(ValueError):
    pass


def matches(pattern: str, path: str) -> bool:
    return compile_glob(pattern).fullmatch(path) is not None


@functools.lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The pattern as a regular expression, or `GlobError` saying what is wrong."""
    if len(pattern) > MAX_PATTERN:
        raise GlobError(f"longer than {MAX_PATTERN} characters")
    out, i = _parse(pattern, 0, 0)
    if i != len(pattern):
        raise GlobError(f"unexpected {pattern[i]!r} at {i}")
    return re.compile(out, re.DOTALL)


def _parse(p: str, i: int, depth: int) -> tuple[str, int]:
    """The regex of `p[i:]` up to an unmatched `,` or `}` inside braces (depth > 0)."""
    out: list[str] = []
    while i < len(p):
        c = p[i]
        if c == "\\":
            if i + 1 >= len(p):
                raise GlobError("a trailing backslash escapes nothing")
            out.append(re.escape(p[i + 1]))
            i += 2
        elif c == "*":
            while i < len(p) and p[i] == "*":
                i += 1
            out.append(".*")
        elif c == "?":
            out.append(".")
            i += 1
        elif c == "[":
            cls, i = _class(p, i)
            out.append(cls)
        elif c == "{":
            alts: list[str] = []
            i += 1
            while True:
                alt, i = _parse(p, i, depth + 1)
                alts.append(alt)
                if i >= len(p):
                    raise GlobError("a { is not closed")
                if p[i] == "}":
                    i += 1
                    break
                i += 1  # ","
            out.append("(?:" + "|".join(alts) + ")")
        elif depth > 0 and c in ",}":
            return "".join(out), i
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out), i


def _class(p: str, i: int) -> tuple[str, int]:
    end = p.find("]", i + 2)
    if end < 0:
        raise GlobError("a [ is not closed")
    body = p[i + 1 : end]
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    if not body:
        raise GlobError("an empty character class")
    parts = []
    j = 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            lo, hi = body[j], body[j + 2]
            if lo > hi:
                raise GlobError(f"range {lo}-{hi} is out of order")
            parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
            j += 3
        else:
            parts.append(re.escape(body[j]))
            j += 1
    return "[" + ("^" if negate else "") + "".join(parts) + "]", end + 1
