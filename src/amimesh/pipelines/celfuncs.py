"""CEL for Tekton Triggers: the common-expression-language library, with the functions
Triggers adds to it. Pure (a Secret's bytes come through a lookup).

- `header.match(name, value)`: the header's first value is `value` (name in any case);
- `header.canonical(name)`: the header's first value, "" when there is none;
- `s.truncate(n)`: the first n characters;
- `s.compareSecret(key, name[, namespace])`: `s` equals the Secret's key, compared in
  constant time; the Secret is the trigger's namespace's (as Tekton reads it,
  whatever the third argument says);
- `s.parseJSON()`, `s.parseYAML()`, `s.parseURL()` (scheme, host, path, rawQuery,
  fragment, query (values joined with ","), queryStrings (lists), and auth when the
  URL has a user), `v.marshalJSON()`;
- `l.first()`, `l.last()` (null for an empty list);
- `s.translate(regex, replacement)`: every match replaced (`$1` style groups).

And the string functions of cel-go's strings extension, which Triggers loads:
`split(sep[, n])`, `join([sep])`, `lowerAscii()`, `upperAscii()`,
`replace(old, new[, n])`, `trim()`, `substring(start[, end])`, `indexOf(sub)`,
`lastIndexOf(sub)`.

Each is callable as a method or a function (`truncate(s, 7)`), as the library binds
them.
"""

from __future__ import annotations

import hmac
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from amimesh.pipelines.triggers import canonical
from amimesh.resources import cel_ext

# (secret name, key, namespace or None) -> the secret's bytes, None when absent.
SecretLookup = Callable[[str, str, "str | None"], bytes | None]


class CelError(ValueError):
    """An expression that does not compile or evaluate."""


def _headers(h: Any) -> Mapping[str, Any]:
    if not isinstance(h, Mapping):
        raise CelError("match and canonical apply to the header map")
    return {canonical(str(k)): v for k, v in h.items()}


def _first_value(h: Any, name: str) -> str:
    v = _headers(h).get(canonical(name))
    if isinstance(v, list):
        return str(v[0]) if v else ""
    return "" if v is None else str(v)


def match(h: Any, name: str, value: str) -> bool:
    return _first_value(h, name) == value


def header_canonical(h: Any, name: str) -> str:
    return _first_value(h, name)


def truncate(s: str, n: int) -> str:
    return s[: max(int(n), 0)]


def parse_json(s: str) -> Any:
    try:
        return json.loads(s)
    except json.JSONDecodeError as err:
        raise CelError(f"parseJSON: {err}") from None


def parse_yaml(s: str) -> Any:
    try:
        return yaml.safe_load(s)
    except yaml.YAMLError as err:
        raise CelError(f"parseYAML: {err}") from None


def parse_url(s: str) -> dict[str, Any]:
    u = urllib.parse.urlsplit(s)
    lists = urllib.parse.parse_qs(u.query, keep_blank_values=True)
    out: dict[str, Any] = {
        "scheme": u.scheme,
        "host": u.netloc.rpartition("@")[2],
        "path": u.path,
        "rawQuery": u.query,
        "fragment": u.fragment,
        "queryStrings": lists,
        "query": {k: ",".join(v) for k, v in lists.items()},
    }
    if u.username is not None:
        out["auth"] = {"username": u.username, "password": u.password or ""}
    return out


def marshal_json(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def first(items: list[Any]) -> Any:
    return items[0] if items else None


def last(items: list[Any]) -> Any:
    return items[-1] if items else None


def translate(s: str, pattern: str, replacement: str) -> str:
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise CelError(f"translate: {err}") from None
    return regex.sub(re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", replacement), s)


def split(s: str, sep: str, n: int = -1) -> list[str]:
    if n == 0:
        return []
    if sep == "":
        parts = list(s)
        return parts if n < 0 or n >= len(parts) else [*parts[: n - 1], "".join(parts[n - 1 :])]
    return s.split(sep) if n < 0 else s.split(sep, n - 1)


def join(items: list[Any], sep: str = "") -> str:
    return sep.join(str(i) for i in items)


def replace(s: str, old: str, new: str, n: int = -1) -> str:
    return s.replace(old, new, n)


def substring(s: str, start: int, end: int | None = None) -> str:
    stop = len(s) if end is None else int(end)
    if not 0 <= int(start) <= stop <= len(s):
        raise CelError(f"substring: index out of range: {start}, {stop}")
    return s[int(start) : stop]


class Env:
    """Variables and the functions above, for evaluating expressions."""

    def __init__(self, variables: Mapping[str, Any], secret: SecretLookup) -> None:
        self.variables = dict(variables)
        self._secret = secret

    def compare_secret(self, s: str, key: str, name: str, namespace: str | None = None) -> bool:
        found = self._secret(name, key, None)
        if found is None:
            raise CelError(f"compareSecret: secret {name} has no key {key}")
        return hmac.compare_digest(str(s).encode(), found)

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "match": match,
            "canonical": header_canonical,
            "truncate": truncate,
            "compareSecret": self.compare_secret,
            "parseJSON": parse_json,
            "parseYAML": parse_yaml,
            "parseURL": parse_url,
            "marshalJSON": marshal_json,
            "first": first,
            "last": last,
            "translate": translate,
            "split": split,
            "join": join,
            "lowerAscii": lambda s: str(s).lower(),
            "upperAscii": lambda s: str(s).upper(),
            "replace": replace,
            "trim": lambda s: str(s).strip(),
            "substring": substring,
            "indexOf": lambda s, sub: str(s).find(sub),
            "lastIndexOf": lambda s, sub: str(s).rfind(sub),
        }

    def evaluate(self, expression: str) -> Any:
        cel = cel_ext.load()  # loaded when a trigger uses CEL

        context = cel.Context(variables=self.variables, functions=self.functions())
        try:
            return cel.evaluate(expression, context)
        except CelError:
            raise
        except (ValueError, TypeError, RuntimeError, KeyError) as err:
            raise CelError(str(err).splitlines()[0] if str(err) else repr(err)) from None
