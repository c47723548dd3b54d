"""The RE2 approximation: what Envoy's regex engine accepts, and why it refuses the rest."""

from __future__ import annotations

import pytest

from amimesh.resources import re2

NOT_RE2 = ", which RE2 (the regex engine of Envoy) does not support"


@pytest.mark.parametrize(
    "pattern",
    [
        "^/api/v[0-9]+/.*",
        r"\d+\.\d+",
        "(?:a|b)+?",
        "(?i)^/Reviews",
        r"^/files/.*\z",  # RE2's end of text, which Python spells \Z
        r"\pL+\p{Greek}",  # Unicode classes Python lacks
        "(?P<id>[0-9]+)",
        "(?<id>[0-9]+)",  # RE2's newer named-group spelling
        "[[:alpha:]]+",  # POSIX class: Python would warn about a nested set
        "[]a]",
        r"[\1]",  # an octal escape in a class, not a backreference
        "a}+",  # a literal brace, then '+'
        "",
    ],
)
def test_valid(pattern: str) -> None:
    assert re2.problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(?=x)", "uses lookahead (?=...)" + NOT_RE2),
        ("a(?!b)", "uses negative lookahead (?!...)" + NOT_RE2),
        ("(?<=a)b", "uses lookbehind (?<=...)" + NOT_RE2),
        ("(?<!a)b", "uses negative lookbehind (?<!...)" + NOT_RE2),
        (r"(a)\1", r"uses a backreference (\1)" + NOT_RE2),
        ("(?P<x>a)(?P=x)", "uses a named backreference (?P=name)" + NOT_RE2),
        ("(?>a)", "uses an atomic group (?>...)" + NOT_RE2),
        ("(a)?(?(1)b|c)", "uses a conditional (?(...)...)" + NOT_RE2),
        ("a(?#note)", "uses a comment (?#...)" + NOT_RE2),
        ("a++", "uses a possessive quantifier (such as a++)" + NOT_RE2),
        ("a{2}+", "uses a possessive quantifier (such as a++)" + NOT_RE2),
        (r"end\Z", r"uses \Z" + NOT_RE2 + r" (write \z or $)"),
        ("[a-", "is not a valid regular expression: unterminated character set at position 0"),
        ("a**", "is not a valid regular expression: multiple repeat at position 2"),
        ("a" * 1025, "regex is too long (1025 characters, at most 1024)"),
    ],
)
def test_invalid(pattern: str, problem: str) -> None:
    assert re2.problem(pattern) == problem
