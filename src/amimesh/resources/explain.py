"""Turn pydantic's errors into field paths and plain-words messages.

Paths are rendered by walking the model types along pydantic's `loc`, so list indexes
become `[i]`, map keys `.key` (or `["a.b/c"]`), aliases stay as the user wrote them
(`from`), and union member tags disappear.
"""

from __future__ import annotations

import difflib
import re
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from amimesh.resources.errors import Loc
from amimesh.resources.fields import DNS_LABEL, DNS_SUBDOMAIN, show
from amimesh.resources.meta import ObjectMeta, Resource

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_PATTERNS = {
    DNS_LABEL: "must be a DNS label: lowercase letters, digits and '-', "
    "starting and ending with a letter or digit",
    DNS_SUBDOMAIN: "must be a lowercase DNS name: letters, digits, '-' and '.', "
    "starting and ending with a letter or digit",
}


@dataclass(frozen=True)
class Located:
    path: str
    owner: type[BaseModel] | None  # the model whose field the path ends in
    annotation: Any  # the type at the end of the path, when known
    via_union: bool = False  # the path went through a union member tag


def unwrap(tp: Any) -> Any:
    """`tp` without `Annotated` metadata and without `| None`."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def field_by_alias(model: type[BaseModel], name: str) -> FieldInfo | None:
    for attr, info in model.model_fields.items():
        if (info.alias or attr) == name:
            return info
    return None


def locate(root: type[BaseModel], loc: Loc) -> Located:
    """Render `loc` as `spec.http[0].route[1].weight`, following the types from `root`."""
    path = ""
    tp: Any = root
    owner: type[BaseModel] | None = root
    via_union = False
    for elem in loc:
        if elem == "[key]":
            continue
        tp = unwrap(tp)
        origin = get_origin(tp)
        if is_model(tp) and isinstance(elem, str):
            owner = tp
            info = field_by_alias(tp, elem)
            path += f".{elem}" if path else elem
            tp = info.annotation if info is not None else Any
        elif origin in (list, tuple) and isinstance(elem, int):
            path += f"[{elem}]"
            tp = get_args(tp)[0] if get_args(tp) else Any
        elif origin is dict and isinstance(elem, str):
            path += f".{elem}" if _PLAIN_KEY.match(elem) else f'["{elem}"]'
            tp = get_args(tp)[1] if get_args(tp) else Any
        elif origin in (Union, types.UnionType) and isinstance(elem, str):
            # A union member tag, not a path element.
            via_union = True
            tp = next((a for a in get_args(tp) if getattr(a, "__name__", "") == elem), Any)
        elif isinstance(elem, int):
            path += f"[{elem}]"
            tp = Any
        else:
            path += f".{elem}" if path else elem
            tp = Any
    return Located(path, owner, tp, via_union)


def display_name(model: type[BaseModel] | None) -> str:
    """How a message names a model: a kind, "metadata", "VirtualService spec", HTTPRoute."""
    if model is None:
        return "this object"
    if model is ObjectMeta:
        return "metadata"
    if issubclass(model, Resource):
        return model.KIND or model.__name__
    name = model.__name__
    if name.endswith("Spec") and len(name) > 4:
        return f"{name[:-4]} spec"
    return name


def _suggestion(name: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    known = [info.alias or attr for attr, info in model.model_fields.items()]
    camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)
    by_lower = {k.lower(): k for k in known}
    if camel.lower() in by_lower:
        return f'; did you mean "{by_lower[camel.lower()]}"?'
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return f'; did you mean "{close[0]}"?' if close else ""


def message(error: Any, where: Located) -> str:
    """One pydantic error (a dict from `errors()`) in plain words."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = show(error.get("input"))
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        name = str(error["loc"][-1])
        owner = display_name(where.owner)
        return (
            f'unknown field (Ami does not know "{name}" on {owner}{_suggestion(name, where.owner)})'
        )
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    bounds = {
        "less_than_equal": ("must be at most", "le"),
        "greater_than_equal": ("must be at least", "ge"),
        "less_than": ("must be less than", "lt"),
        "greater_than": ("must be more than", "gt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        limit = ctx.get(key)
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"{words} {limit}, got {got}"
    if kind == "literal_error":
        return f"must be one of {_allowed(where.annotation, ctx)}, got {got}"
    if kind == "string_pattern_mismatch":
        return f"{_PATTERNS.get(ctx.get('pattern', ''), 'has the wrong format')}, got {got}"
    if kind in ("string_too_short", "too_short"):
        if ctx.get("min_length") == 1:
            return "must not be empty"
        return f"must have at least {ctx.get('min_length')} entries"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long, got {got}"
    if kind == "string_type":
        hint = f' (quote it: "{error["input"]}")' if _is_scalar(error.get("input")) else ""
        return f"must be a string, got {got}{hint}"
    return _type_message(kind, got) or _lower_first(error["msg"]) + f", got {got}"


def _type_message(kind: str, got: str) -> str | None:
    if kind.startswith("int_"):
        return f"must be a whole number, got {got}"
    if kind.startswith("float_"):
        return f"must be a number, got {got}"
    if kind.startswith("bool_"):
        return f"must be true or false, got {got}"
    if kind in ("dict_type", "mapping_type"):
        return f"must be a mapping (key: value), got {got}"
    if kind in ("model_type", "model_attributes_type"):
        return f"must be a mapping of fields, got {got}"
    if kind in ("list_type", "tuple_type", "iterable_type"):
        return f"must be a list, got {got}"
    return None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float)


def _allowed(annotation: Any, ctx: dict[str, Any]) -> str:
    tp = unwrap(annotation)
    if get_origin(tp) is Literal:
        return ", ".join(show(v) for v in get_args(tp))
    return str(ctx.get("expected", "")).replace("'", '"')


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def explain(root: type[BaseModel], exc: ValidationError) -> list[tuple[str, str]]:
    """(field path, message) for each error; union members at one path become one error."""
    out: list[tuple[str, list[str]]] = []
    unions: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        where = locate(root, error["loc"])
        text = message(error, where)
        if not where.via_union:
            out.append((where.path, [text]))
        elif where.path in unions:
            if text not in unions[where.path]:
                unions[where.path].append(text)
        else:
            unions[where.path] = [text]
            out.append((where.path, unions[where.path]))
    return [(path, "; or ".join(texts)) for path, texts in out]
