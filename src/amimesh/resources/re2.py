"""An approximate RE2 syntax check, so a bad regex fails validation instead of an Envoy NACK.

Python's `re` is close to RE2 but not equal. We first reject the constructs Python has and
RE2 lacks (lookarounds, backreferences, atomic groups, possessive quantifiers,
conditionals, comments, `\\Z`), then rewrite the few RE2 spellings Python lacks (`\\z`,
`(?<name>`, `\\pL`, `\\p{Greek}`) and let Python compile the rest.
"""

from __future__ import annotations

import re
import warnings

# Istio refuses longer patterns: Envoy bounds the compiled program size.
MAX_LENGTH = 1024

_GROUP_PROBLEMS = (
    ("?=", "lookahead (?=...)"),
    ("?!", "negative lookahead (?!...)"),
    ("?<=", "lookbehind (?<=...)"),
    ("?<!", "negative lookbehind (?<!...)"),
    ("?P=", "a named backreference (?P=name)"),
    ("?>", "an atomic group (?>...)"),
    ("?(", "a conditional (?(...)...)"),
    ("?#", "a comment (?#...)"),
)
_QUANTIFIER_END = "*+?}"
_UNICODE_CLASS = re.compile(r"\\[pP](\{[^}]*\}|[A-Za-z])")
_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")


def problem(pattern: str) -> str | None:
    """Why `pattern` is not a valid RE2 regex, or None if it (probably) is."""
    if len(pattern) > MAX_LENGTH:
        return f"regex is too long ({len(pattern)} characters, at most {MAX_LENGTH})"
    unsupported = _unsupported_construct(pattern)
    if unsupported is not None:
        hint = " (write \\z or $)" if unsupported == "\\Z" else ""
        return f"uses {unsupported}, which RE2 (the regex engine of Envoy) does not support{hint}"
    python_pattern = _NAMED_GROUP.sub("(?P<", _UNICODE_CLASS.sub("a", pattern))
    python_pattern = python_pattern.replace(r"\z", r"\Z")
    try:
        with warnings.catch_warnings():
            # Python warns about RE2's [[:alpha:]] classes ("possible nested set").
            warnings.simplefilter("ignore")
            re.compile(python_pattern)
    except re.error as err:
        where = f" at position {err.pos}" if err.pos is not None else ""
        return f"is not a valid regular expression: {err.msg}{where}"
    return None


def _unsupported_construct(pattern: str) -> str | None:
    """Scan outside character classes for constructs RE2 does not have."""
    i = 0
    n = len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if not in_class and nxt.isdigit() and nxt != "0":
                return f"a backreference (\\{nxt})"
            if nxt == "Z":
                return "\\Z"
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            elif pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                i = end + 2 if end != -1 else i + 1
                continue
            i += 1
            continue
        if c == "[":
            in_class = True
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):
                i += 1  # a leading ']' is a literal
            continue
        if c == "(":
            for prefix, name in _GROUP_PROBLEMS:
                if pattern.startswith(prefix, i + 1):
                    return name
        if c in _QUANTIFIER_END and i > 0 and pattern.startswith("+", i + 1):
            if _is_quantifier(pattern, i):
                return "a possessive quantifier (such as a++)"
        i += 1
    return None


_COUNTED = re.compile(r"\{\d+(,\d*)?\}$")


def _is_quantifier(pattern: str, i: int) -> bool:
    """Whether the character at `i` ends a quantifier (not a lazy '?' or a literal '}')."""
    c = pattern[i]
    if c == "?":
        return pattern[i - 1] not in "*+?}("
    if c == "}":
        return _COUNTED.search(pattern[: i + 1]) is not None
    return True
