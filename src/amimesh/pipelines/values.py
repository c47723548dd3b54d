"""Tekton's variable substitution and param resolution. Pure.

    values = Values()
    values.set("params.who", "world")
    values.set("params.files", ["a", "b"])
    values.set("params.repo", {"url": "https://...", "rev": "main"})
    values.string("hello $(params.who)")            # "hello world"
    values.items(["-v", "$(params.files[*])"])      # ["-v", "a", "b"]
    values.value("$(params.repo[*])")               # {"url": ..., "rev": ...}

A variable that names nothing known is left as written, as Tekton leaves it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from amimesh.resources import tekton as tk
from amimesh.resources import tekton_refs as refs
from amimesh.resources.checks_tekton import param_type, value_type

Value = str | list[str] | dict[str, str]
_VARIABLE = re.compile(r"\$\(([^()]*)\)")


@dataclass
class Values:
    """What variables stand for, by normalized key (`params.who`, `tasks.a.results.r`)."""

    known: dict[str, Value] = field(default_factory=dict)

    def set(self, key: str, value: Value) -> None:
        self.known[key] = value

    def update(self, other: Mapping[str, Value]) -> None:
        self.known.update(other)

    def copy(self) -> Values:
        return Values(dict(self.known))

    def lookup(self, v: refs.Variable) -> Value | None:
        """What one variable stands for, or None."""
        value = self.known.get(v.key)
        if value is None and len(v.parts) >= 2:
            parent = self.known.get(".".join((v.root, *v.parts[:-1])))
            if isinstance(parent, dict):
                value = parent.get(v.parts[-1])
        if value is None:
            return None
        if v.index is None:
            return value
        if v.index == "*":
            return value if isinstance(value, list | dict) else None
        if isinstance(value, list):
            i = int(v.index)
            return value[i] if i < len(value) else None
        return None

    def string(self, text: str) -> str:
        """`text` with every variable that stands for a string replaced."""
        if "$(" not in text:
            return text

        def replace(m: re.Match[str]) -> str:
            v = refs.parse_variable(m.group(0))
            found = self.lookup(v) if v is not None else None
            return found if isinstance(found, str) else m.group(0)

        return _VARIABLE.sub(replace, text)

    def items(self, texts: Sequence[str]) -> list[str]:
        """command or args: an item that is only `$(x[*])` of an array becomes its items."""
        out: list[str] = []
        for text in texts:
            whole = self.value(text)
            if not isinstance(whole, list):  # `$(params.arr)` alone, as Tekton allows
                m = _VARIABLE.fullmatch(text)
                v = refs.parse_variable(m.group(0)) if m is not None else None
                found = self.lookup(v) if v is not None and v.index is None else None
                whole = found if isinstance(found, list) else whole
            if isinstance(whole, list):
                out.extend(whole)
            else:
                out.append(self.string(text))
        return out

    def value(self, text: str) -> Value:
        """A param value: `$(x[*])` alone stands for the whole array or object (and so
        does a whole array or object result, `$(tasks.t.results.r)`)."""
        m = _VARIABLE.fullmatch(text)
        if m is not None:
            v = refs.parse_variable(m.group(0))
            if v is not None and (v.index == "*" or (v.index is None and v.root == "tasks")):
                found = self.lookup(v)
                if isinstance(found, list | dict):
                    return found
        return self.string(text)

    def param_value(self, value: Value) -> Value:
        """A pipeline task's param value with everything known put in."""
        if isinstance(value, str):
            return self.value(value)
        if isinstance(value, list):
            return self.items(value)
        return {k: self.string(v) for k, v in value.items()}


class ParamError(ValueError):
    """Params that do not fit the declarations; `reason` is Tekton's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def resolve_params(
    declared: Sequence[tk.ParamSpec], given: Iterable[tuple[str, Value]], owner: str
) -> dict[str, Value]:
    """Each declared param's value: given, else its default. Raises `ParamError` with
    Tekton's reason for a missing param, a type mismatch, an object missing keys or a
    value outside `enum`. Params given and not declared are dropped, as Tekton does."""
    given_map = dict(given)
    out: dict[str, Value] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    for p in declared:
        kind = param_type(p)
        value = given_map.get(p.name, p.default)
        if value is None:
            missing.append(p.name)
            continue
        if value_type(value) != kind:
            mismatched.append(p.name)
            continue
        if isinstance(value, dict):
            if isinstance(p.default, dict):
                value = {**p.default, **value}
            absent = sorted(set(p.properties) - set(value))
            if absent:
                raise ParamError(
                    "ObjectParameterMissKeys",
                    f"{owner}: object param {p.name!r} is missing keys: {', '.join(absent)}",
                )
        if p.enum and isinstance(value, str) and value not in p.enum:
            raise ParamError(
                "InvalidParamValue",
                f"{owner}: param {p.name!r} value {value!r} is not in the enum list {p.enum}",
            )
        out[p.name] = value
    if missing:
        raise ParamError("ParameterMissing", f"{owner}: missing parameters: {sorted(missing)}")
    if mismatched:
        raise ParamError(
            "ParameterTypeMismatch",
            f"{owner}: parameters have inconsistent types: {sorted(mismatched)}",
        )
    return out


def param_values(params: Mapping[str, Value]) -> dict[str, Value]:
    """Params as substitution keys: `params.x` for each."""
    return {f"params.{name}": value for name, value in params.items()}
