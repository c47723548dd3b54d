"""Seed configs and structure-aware mutations of them, for the Envoy property test
(no tests here).

A `Seed` is a config as documents (plain YAML data): the examples, the YAML under
tests/unit/testdata, the property test's own corpus, and every YAML literal in the
test modules that loads without errors. A mutant is a seed with a few `Op`s applied
to its tree: drop a field, duplicate or empty a list, set a scalar to a boundary
value, rename a map key (a header name, a label), swap two values of one type, splice
in a value or a field seen at the same place elsewhere in the corpus, duplicate a
document. Richer seeds are picked more often, and values more often than maps. Ops
are data (a path and a value), so a mutant replays from its ops alone, and a subset
of them replays too (an op whose path went away does nothing): that is how a failure
is minimized.
"""

from __future__ import annotations

import ast
import copy
import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from amimesh.resources import parse_documents
from amimesh.resources.files import yaml_files

ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = ROOT / "tests/unit/testdata/envoy_property/corpus"

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Seed:
    name: str  # where it comes from: a directory, a file, or `module.py:LINE`
    docs: tuple[Any, ...]


@dataclass(frozen=True)
class Op:
    """One mutation: `kind` at `path` (document index first), with `value`."""

    kind: str  # drop | dup | empty | set | swap | add | rekey | dupdoc
    path: Path_
    value: Any = None

    def describe(self) -> str:
        where = show_path(self.path)
        if self.kind in ("set", "add"):
            return f"{self.kind} {where} = {_short(self.value)}"
        if self.kind == "swap":
            return f"swap {where} <-> {show_path(self.value)}"
        if self.kind == "rekey":
            return f"rename key {where} to {_short(self.value)}"
        return f"{self.kind} {where}"


def show_path(path: Path_) -> str:
    if not path:
        return "(all)"
    out = f"document {path[0]}"
    for p in path[1:]:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- the corpus --------------------------------------------------------------------------


def _docs(text: str) -> tuple[Any, ...]:
    return tuple(d for d in yaml.safe_load_all(text) if d is not None)


def _loads_cleanly(docs: Sequence[Any], name: str) -> bool:
    result = parse_documents(dump(docs), name)
    return not result.errors and bool(result.resources)


def _key(doc: Any) -> tuple[Any, ...]:
    if not isinstance(doc, dict):
        return (id(doc),)
    meta = doc.get("metadata") or {}
    return (doc.get("kind"), meta.get("namespace", "default"), meta.get("name"))


def _applied(base: Sequence[Any], extra: Sequence[Any]) -> tuple[Any, ...]:
    """`extra` applied on top of `base`, as `ami apply` does: same kind/namespace/name
    replaces."""
    keys = {_key(d) for d in extra}
    return (*(d for d in base if _key(d) not in keys), *extra)


def _dir_docs(root: Path) -> tuple[Any, ...]:
    return tuple(d for f in yaml_files(root) for d in _docs(f.read_text()))


def _literals(module: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of each string literal in `module` that looks like Kubernetes YAML."""
    tree = ast.parse(module.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if "apiVersion" in text and "kind:" in text:
                yield node.lineno, text


def load_corpus(root: Path = ROOT) -> list[Seed]:
    """Every seed, in a fixed order; only those Ami loads without errors."""
    found: list[Seed] = []
    examples = root / "examples"
    shop = _dir_docs(examples / "shop/mesh")
    found.append(Seed("examples/mesh", _dir_docs(examples / "mesh")))
    found.append(Seed("examples/shop/mesh", shop))
    for task in yaml_files(examples / "shop/tasks"):
        name = f"examples/shop/mesh + {task.relative_to(examples)}"
        found.append(Seed(name, _applied(shop, _docs(task.read_text()))))
    testdata = root / "tests/unit/testdata"
    found.append(Seed("testdata/resources/bookinfo", _dir_docs(testdata / "resources/bookinfo")))
    for f in [*yaml_files(testdata / "analyze"), *yaml_files(root / CORPUS_DIR)]:
        found.append(Seed(str(f.relative_to(root)), _docs(f.read_text())))
    for module in sorted((root / "tests").rglob("test_*.py")):
        for line, text in _literals(module):
            try:
                docs = _docs(text)
            except yaml.YAMLError:
                continue
            found.append(Seed(f"{module.relative_to(root)}:{line}", docs))
    return [s for s in found if s.docs and _loads_cleanly(s.docs, s.name)]


# --- walking the tree --------------------------------------------------------------------


def nodes(tree: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every (path, value) under `tree`, `tree` itself first."""
    yield path, tree
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from nodes(v, (*path, k))
    elif isinstance(tree, list | tuple):
        for i, v in enumerate(tree):
            yield from nodes(v, (*path, i))


def get(tree: Any, path: Path_) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def last_key(path: Path_) -> str:
    """The nearest map key on `path` (`match` for spec.http[0].match[1])."""
    for p in reversed(path):
        if isinstance(p, str):
            return p
    return ""


def shape(tree: list[Any], path: Path_) -> tuple[str, ...]:
    """Where `path` is, whatever the list indexes: the document's kind and the map keys
    (`VirtualService`, `spec`, `http`, `route`, `destination`)."""
    doc = tree[path[0]] if path and isinstance(path[0], int) else None
    kind = f"{doc.get('apiVersion')}/{doc.get('kind')}" if isinstance(doc, dict) else ""
    return (kind, *(p for p in path[1:] if isinstance(p, str)))


@dataclass
class Index:
    """What the corpus holds at each place (`shape`): values, for splicing, and the
    fields of maps, for adding one that a map at the same place has elsewhere. Also by
    map key alone, for values that wander from one kind to another."""

    values: dict[tuple[str, ...], list[Any]]
    by_key: dict[str, list[Any]]
    fields: dict[tuple[str, ...], list[tuple[str, Any]]]
    names: list[str]
    weights: list[float]  # of each seed, for `pick`

    @classmethod
    def of(cls, seeds: Sequence[Seed]) -> Index:
        values: dict[tuple[str, ...], list[Any]] = {}
        by_key: dict[str, list[Any]] = {}
        fields: dict[tuple[str, ...], list[tuple[str, Any]]] = {}
        names: set[str] = set()
        weights = []
        for seed in seeds:
            tree = list(seed.docs)
            weights.append(math.sqrt(sum(1 for _ in nodes(tree))))
            for path, value in nodes(tree):
                key = last_key(path)
                if not key:
                    continue
                where = shape(tree, path)
                values.setdefault(where, []).append(value)
                by_key.setdefault(key, []).append(value)
                if isinstance(value, dict):
                    fields.setdefault(where, []).extend(value.items())
                if key == "name" and isinstance(value, str):
                    names.add(value)
        return cls(values, by_key, fields, sorted(names), weights)

    def splice(self, rng: random.Random, tree: list[Any], path: Path_) -> list[Any]:
        """Values seen at the place of `path`, now and then at its key anywhere."""
        if rng.random() < 0.2:
            return self.by_key.get(last_key(path), [])
        return self.values.get(shape(tree, path), [])


# --- boundary values ---------------------------------------------------------------------

INTS = [0, -1, 1, 2, 3, 100, 101, 1000, 2**31 - 1, 2**31, 2**32, 2**63, 10**30]
PORTS = [0, 1, 80, 1023, 15001, 65535, 65536, -1, 2**31]
PERCENTS = [0, 100, 101, 0.0001, 50.5, -1, 1e-9, 99.99999, 1e308]
FLOATS = [0.0, -1.0, 0.0001, 0.5, 100.0, 101.0, 1e308, -1e308, math.nan, math.inf]
DURATIONS = [
    "0s",
    "1ms",
    "-1s",
    "99999h",
    "0.0001s",
    "0.5ms",
    "1.5s",
    "1us",
    "1ns",
    "60m",
    "9223372035s",
    "9223372036s",
    "315576000001s",
    "1d",
    "10",
    "1h1m",
]
STRINGS = [
    "",
    " ",
    "x" * 300,
    "y" * 5000,
    "üñíçødé-日本-😀",
    ".*",
    "(",
    "[a-",
    "^$",
    "a|b",
    "\\d+",
    "(?i)abc",
    "(a+)+$",
    "*",
    "**",
    "*.",
    "/",
    "//",
    "/a b",
    "?",
    "#frag",
    "%",
    "%%",
    "%DOWNSTREAM_REMOTE_ADDRESS%",
    "%BOGUS%",
    "%REQ(x-a)%",
    "a\nb",
    "a\rb",
    "\t",
    "a\x00b",
    "X-Upper-Case",
    ":authority",
    ":path",
    ":method",
    "host",
    "Host",
    "content-length",
    "te",
    "connection",
    "transfer-encoding",
    "x-envoy-original-path",
    "grpc-timeout",
    "0",
    "-1",
    "1.2.3.4",
    "::1",
    "[::1]",
    "10.0.0.0/8",
    "0.0.0.0/0",
    "10.0.0.1/33",
    "300.1.1.1",
    "a.b.c",
    "*.example.com",
    "example.com:80",
    "reviews",
    "reviews.default.svc.cluster.local",
    "spiffe://cluster.local/ns/default/sa/x",
    "cluster.local/ns/*/sa/*",
    "https://example.com/jwks",
    "null",
    "true",
    "v1",
    "GET",
    "HTTP",
    "TCP",
    "GRPC",
    "TLS",
    "HTTPS",
    "MUTUAL",
    "ISTIO_MUTUAL",
    "STRICT",
    "default",
    "kube-system",
    "/etc/missing.pem",
    "relative/path.pem",
    "0.0.0.0",
    "localhost",
]
_DURATION = re.compile(r"^-?[0-9.]+(ns|us|µs|ms|s|m|h)$")
_PORT_KEYS = {"number", "port", "targetPort", "containerPort", "listen_port", "ports", "portNumber"}
_PERCENT_KEYS = {"value", "percent", "percentage", "weight", "mirrorPercent", "maxEjectionPercent"}


def _scalar(rng: random.Random, key: str, current: Any, index: Index, spliced: list[Any]) -> Any:
    spliced = [v for v in spliced if not isinstance(v, dict | list)]
    if spliced and rng.random() < 0.15:
        return rng.choice(spliced)
    if rng.random() < 0.08:  # a value of another type
        return rng.choice([rng.choice(INTS), rng.choice(STRINGS), True, None, [], {}])
    if isinstance(current, bool):
        return not current
    if isinstance(current, int):
        if key in _PORT_KEYS:
            return rng.choice(PORTS)
        if key in _PERCENT_KEYS:
            return rng.choice([*PERCENTS, *INTS])
        return rng.choice(INTS)
    if isinstance(current, float):
        return rng.choice([*FLOATS, *PERCENTS])
    if isinstance(current, str):
        if _DURATION.match(current):
            return rng.choice(DURATIONS)
        if key == "name" and index.names and rng.random() < 0.3:
            return rng.choice(index.names)  # duplicate names
        return rng.choice(STRINGS)
    return rng.choice(STRINGS)


# --- applying ops ------------------------------------------------------------------------


def apply(docs: Sequence[Any], ops: Sequence[Op]) -> list[Any]:
    """A deep copy of `docs` with `ops` applied in order; an op whose path is gone (after
    an earlier op was left out) does nothing."""
    tree = copy.deepcopy(list(docs))
    for op in ops:
        try:
            _apply(tree, op)
        except (KeyError, IndexError, TypeError):
            continue
    return tree


def _apply(tree: list[Any], op: Op) -> None:
    if op.kind == "dupdoc":
        tree.insert(int(op.path[0]) + 1, copy.deepcopy(tree[int(op.path[0])]))
        return
    parent, last = get(tree, op.path[:-1]), op.path[-1]
    if op.kind == "drop":
        del parent[last]
    elif op.kind == "dup":
        parent.insert(int(last) + 1, copy.deepcopy(parent[last]))
    elif op.kind == "empty":
        parent[last] = type(parent[last])()
    elif op.kind in ("set", "add"):
        if isinstance(parent, list) and not isinstance(last, int):
            raise TypeError(op)
        parent[last] = copy.deepcopy(op.value)
    elif op.kind == "rekey":
        if not isinstance(parent, dict) or op.value in parent:
            raise KeyError(op.value)
        items = [(op.value if k == last else k, v) for k, v in parent.items()]
        parent.clear()
        parent.update(items)
    elif op.kind == "swap":
        other_parent, other_last = get(tree, op.value[:-1]), op.value[-1]
        a, b = parent[last], other_parent[other_last]
        parent[last], other_parent[other_last] = b, a
    else:
        raise ValueError(op.kind)


# Maps whose keys are the user's (header names, labels, port numbers), not field names.
_SCHEMA_HINTS = {"apiVersion", "kind", "spec", "name", "host", "hosts", "mode", "match"}


def _free_key(parent: Any) -> bool:
    return isinstance(parent, dict) and not (_SCHEMA_HINTS & set(parent))


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def choose_op(rng: random.Random, tree: list[Any], index: Index) -> Op:
    """One random op that applies to `tree`."""
    everything = [(p, v) for p, v in nodes(tree) if len(p) >= 2]
    # apiVersion and kind changed only get the document refused: mostly left alone.
    candidates = [
        (p, v) for p, v in everything if p[-1] not in ("apiVersion", "kind") or rng.random() < 0.1
    ]
    if not candidates:
        return Op("dupdoc", (0,))
    # Values more often than maps and lists: most of what Envoy checks is in values.
    leaves = [(p, v) for p, v in candidates if not isinstance(v, dict | list)]
    path, value = rng.choice(leaves if leaves and rng.random() < 0.6 else candidates)
    key = last_key(path)
    roll = rng.random()
    if roll < 0.02:
        return Op("dupdoc", path[:1])
    if roll < 0.10:
        return Op("drop", path)
    if roll < 0.14 and isinstance(path[-1], str) and _free_key(get(tree, path[:-1])):
        keys = [k for k, _ in index.fields.get(shape(tree, path[:-1]), [])]
        pool = [*keys, *STRINGS, *(str(p) for p in PORTS)]
        return Op("rekey", path, rng.choice(pool))
    if roll < 0.17:
        lists = [p for p, v in everything if isinstance(v, list) and v]
        if lists:
            chosen = rng.choice(lists)
            return Op("dup", (*chosen, rng.randrange(len(get(tree, chosen)))))
    if roll < 0.22 and isinstance(value, list | dict):
        return Op("empty", path)
    if roll < 0.30:
        same = [
            p
            for p, v in everything
            if p != path
            and _kind_of(v) == _kind_of(value)
            and not isinstance(v, dict | list)
            and p[: len(path)] != path
            and path[: len(p)] != p
        ]
        if same and not isinstance(value, dict | list):
            return Op("swap", path, rng.choice(same))
    if roll < 0.6:
        maps = [(p, v) for p, v in everything if isinstance(v, dict) and last_key(p)]
        if maps:
            where, current = rng.choice(maps)
            place = shape(tree, where)
            options = [(k, v) for k, v in index.fields.get(place, []) if k not in current]
            if options:
                k, v = rng.choice(options)
                return Op("add", (*where, k), v)
    spliced = index.splice(rng, tree, path)
    if isinstance(value, dict | list):
        if spliced and rng.random() < 0.7:
            return Op("set", path, rng.choice(spliced))
        return Op("empty", path)
    return Op("set", path, _scalar(rng, key, value, index, spliced))


def pick(rng: random.Random, corpus: Sequence[Seed], index: Index) -> Seed:
    """A seed, the richer (the more values it holds) the likelier."""
    return rng.choices(corpus, index.weights)[0]


def mutate(rng: random.Random, seed: Seed, index: Index) -> list[Op]:
    """One to four ops, each chosen on the tree the previous ones left."""
    count = 1 + (rng.random() < 0.5) + (rng.random() < 0.25) + (rng.random() < 0.1)
    ops: list[Op] = []
    tree = list(copy.deepcopy(seed.docs))
    for _ in range(count):
        op = choose_op(rng, tree, index)
        ops.append(op)
        tree = apply(tree, [op])
    return ops


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(c in value for c in "\n\r\x00\t") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(docs: Sequence[Any]) -> str:
    """The documents as one multi-document YAML text."""
    return yaml.dump_all(
        list(docs), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000
    )
