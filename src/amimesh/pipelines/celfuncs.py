"""CEL for Tekton Triggers: the common-expression-language library, with the functions
Triggers adds to it. Pure (a Secret's bytes come through a lookup).

- `header.match(name, value)`: the header's first value is `value` (name in any case);
- `header.canonical(name)`: the header's first value, "" when there is none;
- `s.truncate(n)`: the first n characters;
- `s.compareSecret(key, name[, namespace])`: `s` equals the Secret's key, compared in
  constant time;
- `s.parseJSON()`, `s.parseYAML()`, `s.parseURL()` (scheme, host, path, rawQuery,
  query (lists), fragment, auth), `v.marshalJSON()`;
- `l.first()`, `l.last()` (null for an empty list);
- `s.translate(regex, replacement)`: every match replaced (`$1` style groups).

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
    auth: dict[str, str] = {}
    if u.username is not None:
        auth = {"username": u.username, "password": u.password or ""}
    return {
        "scheme": u.scheme,
        "host": u.netloc.rpartition("@")[2],
        "path": u.path,
        "rawQuery": u.query,
        "query": urllib.parse.parse_qs(u.query, keep_blank_values=True),
        "fragment": u.fragment,
        "auth": auth,
    }


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


class Env:
    """Variables and the functions above, for evaluating expressions."""

    def __init__(self, variables: Mapping[str, Any], secret: SecretLookup) -> None:
        self.variables = dict(variables)
        self._secret = secret

    def compare_secret(self, s: str, key: str, name: str, namespace: str | None = None) -> bool:
        found = self._secret(name, key, namespace)
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
        }

    def evaluate(self, expression: str) -> Any:
        import cel  # a compiled extension: loaded when a trigger uses CEL

        context = cel.Context(variables=self.variables, functions=self.functions())
        try:
            return cel.evaluate(expression, context)
        except CelError:
            raise
        except (ValueError, TypeError, RuntimeError, KeyError) as err:
            raise CelError(str(err).splitlines()[0] if str(err) else repr(err)) from None
