"""CESQL's evaluation (the CloudEvents spec, `cesql/spec.md`, section 3). Pure.

    value, errors = evaluate(parse(text), attributes)     # attributes: name -> str | int | bool
    passes(text, attributes)                              # as a Trigger's `cesql` filter

Every operator and function is total: it always gives a value of its type, and a list
of errors beside it. An error where a value is computed (a division by zero, a cast
that cannot be made, a function's own) leaves that node's value as the spec says; a
node whose operand came with errors gives the zero value of its own type (`false`,
`0`, `""`) and passes the errors on. `AND` and `OR` do not evaluate their right side
when the left decides. Casts: to Integer from a base-10 string (with a sign) or a
Boolean (1, 0); to Boolean from "true"/"false" in any case (an Integer is a cast
error, except by `BOOL()`); to String from anything. `=`, `!=` and `<>` compare as
the right operand's type; `IN` as the left's. A filter passes only on `true` with no
error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from amimesh.resources.cesql import (
    INT_MAX,
    INT_MIN,
    Attribute,
    Binary,
    Call,
    Exists,
    In,
    Like,
    Literal,
    Node,
    Unary,
    parse,
)

Value = str | int | bool
Attributes = Mapping[str, Value]

# The error kinds, as the spec and its TCK name them.
MATH = "math"
CAST = "cast"
MISSING_ATTRIBUTE = "missingAttribute"
MISSING_FUNCTION = "missingFunction"
FUNCTION_EVALUATION = "functionEvaluation"


@dataclass(frozen=True)
class Error:
    kind: str
    message: str


Result = tuple[Value, list[Error]]
_ZERO: dict[type, Value] = {bool: False, int: 0, str: ""}
_INT = re.compile(r"[+-]?[0-9]+")


def _kind(value: Value) -> type:
    return bool if isinstance(value, bool) else type(value)


def _wrap(n: int) -> int:
    """A 32-bit integer, as two's complement arithmetic leaves it."""
    return (n - INT_MIN) % 2**32 + INT_MIN


# --- casts -------------------------------------------------------------------------------


def to_int(v: Value) -> tuple[int, list[Error]]:
    if isinstance(v, bool):
        return (1 if v else 0), []
    if isinstance(v, int):
        return v, []
    text = v.strip()
    if _INT.fullmatch(text) and INT_MIN <= int(text) <= INT_MAX:
        return int(text), []
    return 0, [Error(CAST, f"{v!r} is not a 32-bit integer")]


def to_bool(v: Value, *, explicit: bool = False) -> tuple[bool, list[Error]]:
    if isinstance(v, bool):
        return v, []
    if isinstance(v, int):
        if explicit:
            return v != 0, []
        return False, [Error(CAST, f"{v} is an integer, not a boolean")]
    if v.lower() in ("true", "false"):
        return v.lower() == "true", []
    return False, [Error(CAST, f"{v!r} is not a boolean")]


def to_str(v: Value) -> tuple[str, list[Error]]:
    if isinstance(v, bool):
        return ("true" if v else "false"), []
    return str(v), []


_CASTS: dict[type, Callable[[Value], Result]] = {int: to_int, bool: to_bool, str: to_str}


def cast(v: Value, kind: type) -> Result:
    return _CASTS[kind](v)


# --- evaluation --------------------------------------------------------------------------


def return_type(node: Node) -> type:
    """The type a node gives (Boolean where it cannot be known, as the spec says)."""
    if isinstance(node, Literal):
        return _kind(node.value)
    if isinstance(node, Unary):
        return bool if node.op == "NOT" else int
    if isinstance(node, Binary) and node.op in ("*", "/", "%", "+", "-"):
        return int
    if isinstance(node, Call):
        found = _function(node.name, len(node.args))
        return found.returns if found is not None else bool
    return bool


def evaluate(node: Node, event: Attributes) -> Result:
    if isinstance(node, Literal):
        return node.value, []
    if isinstance(node, Attribute):
        if node.name in event:
            return event[node.name], []
        return False, [Error(MISSING_ATTRIBUTE, f"the event has no {node.name}")]
    if isinstance(node, Exists):
        return node.name in event, []
    if isinstance(node, Unary):
        return _unary(node, event)
    if isinstance(node, Binary):
        return _binary(node, event)
    if isinstance(node, Like):
        return _like(node, event)
    if isinstance(node, In):
        return _in(node, event)
    return _call(node, event)


def _unary(node: Unary, event: Attributes) -> Result:
    v, errors = evaluate(node.operand, event)
    if errors:
        return _ZERO[return_type(node)], errors
    if node.op == "NOT":
        b, errors = to_bool(v)
        return not b, errors
    n, errors = to_int(v)
    return _wrap(-n), errors


def _binary(node: Binary, event: Attributes) -> Result:
    op = node.op
    if op in ("AND", "OR", "XOR"):
        return _logic(node, event)
    x, errors = evaluate(node.left, event)
    if errors:
        return _ZERO[return_type(node)], errors
    y, errors = evaluate(node.right, event)
    if errors:
        return _ZERO[return_type(node)], errors
    if op in ("=", "!=", "<>"):
        left, errors = cast(x, _kind(y))
        equal = left == y
        return (equal if op == "=" else not equal), errors
    a, errors_a = to_int(x)
    b, errors_b = to_int(y)
    errors = errors_a + errors_b
    if op in ("<", "<=", ">", ">="):
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op], errors
    if op in ("/", "%") and b == 0:
        return 0, [*errors, Error(MATH, "division by zero")]
    if op == "/":
        q = abs(a) // abs(b)  # rounded towards 0
        return _wrap(q if (a < 0) == (b < 0) else -q), errors
    if op == "%":
        r = abs(a) % abs(b)  # the sign of the dividend
        return _wrap(r if a >= 0 else -r), errors
    return _wrap({"*": a * b, "+": a + b, "-": a - b}[op]), errors


def _logic(node: Binary, event: Attributes) -> Result:
    x, errors = evaluate(node.left, event)
    if errors:
        return False, errors
    a, errors = to_bool(x)
    if node.op == "AND" and not a:
        return False, errors
    if node.op == "OR" and a:
        return True, errors
    y, errors_y = evaluate(node.right, event)
    if errors_y:
        return False, errors + errors_y
    b, errors_b = to_bool(y)
    errors = errors + errors_b
    if node.op == "XOR":
        return a != b, errors
    return b, errors  # AND with a true left, OR with a false left


@functools.lru_cache(maxsize=256)
def like_pattern(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and pattern[i + 1 : i + 2] in ("%", "_"):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _like(node: Like, event: Attributes) -> Result:
    v, errors = evaluate(node.operand, event)
    if errors:
        return False, errors
    text, errors = to_str(v)
    found = like_pattern(node.pattern).fullmatch(str(text)) is not None
    return found != node.negated, errors


def _in(node: In, event: Attributes) -> Result:
    v, errors = evaluate(node.operand, event)
    if errors:
        return False, errors
    kind = _kind(v)
    found = False
    all_errors: list[Error] = []
    for item in node.items:
        w, errors = evaluate(item, event)
        if errors:
            return False, errors
        same, errors = cast(w, kind)
        all_errors += errors
        found = found or same == v
    return found != node.negated, all_errors


# --- functions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Function:
    params: tuple[type, ...]  # the fixed ones
    returns: type
    run: Callable[..., Result]
    variadic: type | None = None  # the type of any further argument


def _left(x: str, n: int) -> Result:
    if n < 0:
        return x, [Error(FUNCTION_EVALUATION, "LEFT of a negative length")]
    return x[:n], []


def _right(x: str, n: int) -> Result:
    if n < 0:
        return x, [Error(FUNCTION_EVALUATION, "RIGHT of a negative length")]
    return (x[-n:] if n else ""), []


def _substring(x: str, pos: int, length: int | None = None) -> Result:
    if pos > len(x) or pos < -len(x):
        return "", [Error(FUNCTION_EVALUATION, f"position {pos} is outside the string")]
    if length is not None and length < 0:
        return "", [Error(FUNCTION_EVALUATION, "a negative length")]
    if pos == 0:
        return "", []
    start = pos - 1 if pos > 0 else len(x) + pos
    end = len(x) if length is None else start + length
    return x[start:end], []


def _abs(n: int) -> Result:
    if n == INT_MIN:
        return INT_MAX, [Error(MATH, "ABS of the most negative integer")]
    return abs(n), []


FUNCTIONS: dict[tuple[str, int | None], Function] = {
    ("LENGTH", 1): Function((str,), int, lambda x: (len(x), [])),
    ("CONCAT", None): Function((), str, lambda *xs: ("".join(xs), []), variadic=str),
    ("CONCAT_WS", None): Function((str,), str, lambda d, *xs: (d.join(xs), []), variadic=str),
    ("LOWER", 1): Function((str,), str, lambda x: (x.lower(), [])),
    ("UPPER", 1): Function((str,), str, lambda x: (x.upper(), [])),
    ("TRIM", 1): Function((str,), str, lambda x: (x.strip(), [])),
    ("LEFT", 2): Function((str, int), str, _left),
    ("RIGHT", 2): Function((str, int), str, _right),
    ("SUBSTRING", 2): Function((str, int), str, _substring),
    ("SUBSTRING", 3): Function((str, int, int), str, _substring),
    ("ABS", 1): Function((int,), int, _abs),
    ("INT", 1): Function((int,), int, lambda x: (x, [])),
    ("STRING", 1): Function((str,), str, lambda x: (x, [])),
    ("BOOL", 1): Function((bool,), bool, lambda x: (x, [])),
    ("IS_BOOL", 1): Function((str,), bool, lambda x: (x.lower() in ("true", "false"), [])),
    ("IS_INT", 1): Function((str,), bool, lambda x: (not to_int(x)[1], [])),
}


def _function(name: str, arity: int) -> Function | None:
    fixed = FUNCTIONS.get((name, arity))
    if fixed is not None:
        return fixed
    variadic = FUNCTIONS.get((name, None))
    if variadic is not None and arity >= len(variadic.params):
        return variadic
    return None


def _call(node: Call, event: Attributes) -> Result:
    found = _function(node.name, len(node.args))
    if found is None:
        return False, [
            Error(MISSING_FUNCTION, f"no function {node.name} of {len(node.args)} arguments")
        ]
    values: list[Value] = []
    for arg in node.args:
        v, errors = evaluate(arg, event)
        if errors:
            return _ZERO[found.returns], errors
        values.append(v)
    args: list[Value] = []
    cast_errors: list[Error] = []
    for i, v in enumerate(values):
        kind = found.params[i] if i < len(found.params) else found.variadic
        assert kind is not None
        c: Value
        if kind is bool and node.name == "BOOL":
            c, errors = to_bool(v, explicit=True)
        else:
            c, errors = cast(v, kind)
        if node.name in ("INT", "BOOL") and errors:
            return c, errors  # the cast is the function: its error, its zero
        args.append(c)
        cast_errors += errors
    value, errors = found.run(*args)
    return value, cast_errors + errors


# --- as a filter -------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def compiled(text: str) -> Node:
    return parse(text)


def passes(text: str, event: Attributes) -> bool:
    """A Trigger's `cesql` filter: true with no error, or the event does not pass."""
    value, errors = evaluate(compiled(text), event)
    return value is True and not errors


def first_error(errors: Sequence[Error]) -> str:
    return errors[0].kind if errors else ""
