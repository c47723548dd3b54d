"""CESQL: the parser's precedence and errors, and evaluation with its casts, errors and
functions, case by case from the spec's rules. With AMI_CESQL_TCK set to a directory of
the CloudEvents spec's TCK (`cesql/cesql_tck/*.yaml`), every case of it runs too."""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from amimesh.eventing import cesql as ev
from amimesh.resources import cesql

EVENT = {
    "specversion": "1.0",
    "id": "order-1",
    "source": "https://shop.example/orders",
    "type": "order.placed",
    "amount": "250",
    "count": 3,
    "vip": True,
    "region": "eu-west",
}

CASES: list[tuple[str, Any, str]] = [
    # literals, case-insensitive keywords, string escapes
    ("TRUE", True, ""),
    ("fAlSe", False, ""),
    ("42", 42, ""),
    ("-2147483648", -(2**31), ""),
    ("'it''s'", "it's", ""),
    ("'it\\'s'", "it's", ""),
    ('"say \\"hi\\""', 'say "hi"', ""),
    ("'a\\b'", "a\\b", ""),
    # attributes, typed extensions, missing ones
    ("type", "order.placed", ""),
    ("TYPE", "order.placed", ""),
    ("count", 3, ""),
    ("vip", True, ""),
    ("subject", False, "missingAttribute"),
    ("EXISTS region AND NOT EXISTS subject", True, ""),
    # precedence: NOT and unary minus bind tightest, then LIKE, IN, * / %, + -, comparisons
    ("1 + 2 * 3", 7, ""),
    ("(1 + 2) * 3", 9, ""),
    ("10 - 4 - 3", 3, ""),
    ("- 3 * 2", -6, ""),
    ("1 + 2 = 3", True, ""),
    ("NOT TRUE = FALSE", True, ""),
    ("TRUE OR FALSE AND FALSE", True, ""),  # one level, grouped from the right
    ("FALSE AND FALSE OR TRUE", False, ""),
    ("TRUE XOR TRUE", False, ""),
    # arithmetic: rounded towards 0, the sign of the dividend, 32 bits, errors
    ("7 / 2", 3, ""),
    ("-7 / 2", -3, ""),
    ("-7 % 3", -1, ""),
    ("7 % -3", 1, ""),
    ("2147483647 + 1", -(2**31), ""),
    ("1 / 0", 0, "math"),
    ("ABS(-2147483648)", 2**31 - 1, "math"),
    # casts: = compares as its right side, < as integers, IN as its left side
    ("amount = 250", True, ""),
    ("250 = amount", True, ""),
    ("amount > 100 AND count < 5", True, ""),
    ("TRUE = 'true'", True, ""),
    ("'TRUE' = TRUE", True, ""),
    ("TRUE = 'TRUE'", False, ""),
    ("'x' = 1", False, "cast"),
    ("NOT 1", True, "cast"),
    ("count IN ('1', '3')", True, ""),
    ("'3' IN (count)", True, ""),
    ("region NOT IN ('us-east', 'eu-west')", False, ""),
    ("'abc' + 1", 1, "cast"),
    # errors travel up as their parent's zero value; AND / OR stop early
    ("TRUE AND (subject = 'x')", False, "missingAttribute"),
    ("FALSE AND (1 / 0 = 0)", False, ""),
    ("TRUE OR (1 / 0 = 0)", True, ""),
    ("subject * 2", 0, "missingAttribute"),
    ("-subject", 0, "missingAttribute"),
    # LIKE: % and _, escaped with a backslash, the left side as a string
    ("type LIKE 'order.%'", True, ""),
    ("type LIKE 'order._laced'", True, ""),
    ("type NOT LIKE '%.placed'", False, ""),
    ("'50%' LIKE '50\\%'", True, ""),
    ("'500' LIKE '50\\%'", False, ""),
    ("'a_c' LIKE 'a\\_c'", True, ""),
    ("'abc' LIKE 'a\\_c'", False, ""),
    ("count LIKE '3'", True, ""),
    ("source LIKE 'https://%.example/%'", True, ""),
    # functions: names in any case, arity picks the overload, casts of arguments
    ("LENGTH(region)", 7, ""),
    ("length(TRUE)", 4, ""),
    ("CONCAT(type, '/', count)", "order.placed/3", ""),
    ("CONCAT_WS('-', 'a', 'b')", "a-b", ""),
    ("CONCAT_WS()", False, "missingFunction"),
    ("UPPER(LEFT(region, 2))", "EU", ""),
    ("RIGHT(region, 4)", "west", ""),
    ("LEFT('abc', -1)", "abc", "functionEvaluation"),
    ("SUBSTRING(region, 4)", "west", ""),
    ("SUBSTRING(region, -4, 2)", "we", ""),
    ("SUBSTRING(region, 0)", "", ""),
    ("SUBSTRING(region, 9)", "", "functionEvaluation"),
    ("TRIM('  x  ')", "x", ""),
    ("INT(amount) * 2", 500, ""),
    ("INT('x')", 0, "cast"),
    ("BOOL(0)", False, ""),
    ("BOOL('nope')", False, "cast"),
    ("STRING(count)", "3", ""),
    ("IS_INT(amount) AND NOT IS_BOOL(amount)", True, ""),
    ("NOPE(1)", False, "missingFunction"),
]


@pytest.mark.parametrize(("text", "value", "error"), CASES, ids=[c[0] for c in CASES])
def test_evaluate(text: str, value: Any, error: str) -> None:
    got, errors = ev.evaluate(cesql.parse(text), EVENT)
    assert (got, type(got), ev.first_error(errors)) == (value, type(value), error)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("type =", "unexpected the end"),
        ("ABC(", "unexpected the end"),
        ("type LIKE 123", "LIKE takes a string literal"),
        ("'open", "no closing '"),
        ("2147483648", "not a 32-bit integer"),
        ("type # 1", "unexpected '#'"),
        ("my_ext = 1", "not an attribute name"),
        ("1 IN ()", "unexpected ')'"),
        ("EXISTS 1 + 1", "EXISTS takes an attribute name"),
        ("(" * 100 + "1" + ")" * 100, "nested deeper than"),
        ("x" * 5000, "longer than"),
        ("a b", "unexpected 'b'"),
    ],
)
def test_parse_errors(text: str, problem: str) -> None:
    with pytest.raises(cesql.ParseError, match=re.escape(problem)):
        cesql.parse(text)


def test_as_a_filter() -> None:
    assert ev.passes("type LIKE 'order.%' AND amount > 100", EVENT)
    assert not ev.passes("amount > 1000", EVENT)
    assert not ev.passes("subject = 'x' OR TRUE", EVENT)  # an error: no pass
    assert not ev.passes("count", EVENT)  # not a boolean


TCK = os.environ.get("AMI_CESQL_TCK", "")


def _tck_cases() -> list[Any]:
    if not TCK:
        return []
    found = []
    for path in sorted(Path(TCK).glob("*.yaml")):
        for case in yaml.safe_load(path.read_text())["tests"]:
            found.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return found


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        if isinstance(v, datetime.datetime | datetime.date):
            v = v.isoformat()
        out[k] = v if isinstance(v, bool | int | str) else str(v)
    return out


@pytest.mark.skipif(not TCK, reason="AMI_CESQL_TCK names no TCK directory")
@pytest.mark.parametrize("case", _tck_cases())
def test_cesql_tck(case: dict[str, Any]) -> None:
    base = {"specversion": "1.0", "id": "id", "source": "/source", "type": "type"}
    if "event" in case:
        event = _typed(case["event"])
    else:
        event = {**base, **_typed(case.get("eventOverrides", {}))}
    text = case["expression"]
    text = text if isinstance(text, str) else str(text)  # YAML reads `TRUE` as a boolean
    want_error = case.get("error", "")
    try:
        value, errors = ev.evaluate(cesql.parse(text), event)
    except cesql.ParseError:
        assert want_error == "parse"
        return
    assert ev.first_error(errors) == want_error
    if "result" in case:
        want = case["result"]
        if isinstance(want, datetime.datetime):
            want = want.isoformat()
        assert (value, type(value)) == (want, type(want))
