"""`$(VAR)` references in a container's command, args and env values, as Kubernetes
expands them (the kubelet's `third_party/forked/golang/expansion`). Pure.

- `$(NAME)` is replaced by NAME's value when NAME is defined, and left as written when
  it is not;
- `$$` is one literal `$`, so `$$(NAME)` is the literal text `$(NAME)`;
- any other `$` (`$NAME`, `${NAME}`, a `$(` with no closing `)`) is kept as written.

The variables a value may refer to follow the kubelet: an `env` value sees the
variables defined before it in the list and the ones the platform sets (for Ami,
`PORT` and the rest of docs/runtime.md); `command` and `args` see the final
environment.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterable, Mapping

_OPERATOR = "$"
_OPEN = "("
_CLOSE = ")"


def expand(text: str, variables: Mapping[str, str]) -> str:
    """`text` with every `$(NAME)` of a defined NAME replaced and `$$` made `$`."""
    if _OPERATOR not in text:
        return text
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == _OPERATOR and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_name, advance = _read_reference(text, cursor + 1)
            if is_name:
                value = variables.get(read)
                out.append(value if value is not None else f"$({read})")
            else:
                out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def _read_reference(text: str, start: int) -> tuple[str, bool, int]:
    """What follows a `$` at `start - 1`: (text read, whether it is a name, how far the
    cursor moves past the `$`)."""
    first = text[start]
    if first == _OPERATOR:
        return _OPERATOR, False, 1  # `$$`: an escaped `$`
    if first == _OPEN:
        end = text.find(_CLOSE, start + 1)
        if end < 0:
            return _OPERATOR + _OPEN, False, 1  # no closing `)`: kept as written
        return text[start + 1 : end], True, end - start + 1
    return _OPERATOR + first, False, 1


def expand_env(entries: Iterable[tuple[str, str]], platform: Mapping[str, str]) -> dict[str, str]:
    """The container's own variables, each value expanded in order: a value sees the
    entries before it (which win) and then `platform`'s variables."""
    declared: dict[str, str] = {}
    scope = ChainMap(declared, dict(platform))  # sees each entry as it is added
    for name, value in entries:
        if value:
            value = expand(value, scope)
        declared[name] = value
    return declared


def expand_all(texts: Iterable[str], variables: Mapping[str, str]) -> tuple[str, ...]:
    """Each of `texts` (a command line) expanded against `variables`."""
    return tuple(expand(t, variables) for t in texts)
