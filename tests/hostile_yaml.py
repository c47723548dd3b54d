"""Hostile YAML for the loader's tests (unit and end to end), with the error each gets.

Each error is what follows `SOURCE: ` in `str(ConfigError)`: the document, the line
where it starts, and the exact place and reason.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
{extra}spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80}}]
"""


def service(name: str, extra: str = "") -> str:
    """A valid Service; `extra` is more of its metadata, each line indented two spaces."""
    return SERVICE.format(name=name, extra=extra)


def alias_bomb(levels: int = 9, fan: int = 9, name: str = "bomb") -> str:
    """A Service whose `metadata.managedFields` nests `levels` levels of `fan`-fold
    aliases: `fan ** levels` strings once expanded. The default is 636 bytes that stand
    for 387 million strings."""
    lines = ["apiVersion: v1", "kind: Service", "metadata:", f"  name: {name}"]
    lines += ["  managedFields:", '  - a0: &a0 ["lol"]']
    for i in range(1, levels):
        lines.append(f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    lines.append("    top: [" + ", ".join([f"*a{levels - 1}"] * fan) + "]")
    lines += ["spec:", "  ports: [{port: 80}]"]
    return "\n".join(lines) + "\n"


BOMB = alias_bomb()
BOMB_ERROR = (
    "document 0 (line 1): YAML refused at line 10, column 39: "
    "aliases stand for more than 10000 nodes"
)

# A list nested 10 000 deep, and a block one nested 150 deep (libyaml's own limit speaks
# for the first, as its scanner reads flow collections ahead; Ami's for the second).
DEEP = "[" * 10_000 + "]" * 10_000
DEEP_ERROR = (
    "document 0 (line 1): invalid YAML at line 1, column 1001: exceeded maximum nesting depth"
)
DEEP_BLOCK = "".join(" " * i + "-\n" for i in range(150)) + " " * 150 + "x\n"
DEEP_BLOCK_ERROR = (
    "document 0 (line 1): YAML refused at line 101, column 101: nested more than 100 levels deep"
)


def python_tag(marker: str) -> str:
    """A Service whose labels, loaded by an unsafe loader, would run `touch marker`."""
    return service("cmd", f"  labels: !!python/object/apply:os.system ['touch {marker}']\n")


PYTHON_TAG_ERROR = (
    "document 0 (line 1): YAML refused at line 5, column 11: tag "
    "!!python/object/apply:os.system is not allowed: Ami reads plain YAML (mappings, lists, "
    "strings, numbers, booleans and null)"
)

DUPLICATE_KEY = service("twice", "  labels: {app: a, app: b}\n")
DUPLICATE_KEY_ERROR = (
    'document 0 (line 1): invalid YAML at line 5, column 20: key "app" is written twice'
)

NOT_UTF8 = service("ok").encode() + b"---\n" + service("caf\xe9").encode("latin-1")
NOT_UTF8_ERROR = "document 1 (line 9): is not UTF-8 text: byte 0xe9 at line 12, column 12"

# name -> (content, error): the hostile documents the end-to-end test sends both ways.
HOSTILE: dict[str, tuple[bytes, str]] = {
    "bomb.yaml": (BOMB.encode(), BOMB_ERROR),
    "deep.yaml": (DEEP.encode(), DEEP_ERROR),
    "deep-block.yaml": (DEEP_BLOCK.encode(), DEEP_BLOCK_ERROR),
    "python.yaml": (python_tag("/tmp/ami-hostile-marker").encode(), PYTHON_TAG_ERROR),
    "twice.yaml": (DUPLICATE_KEY.encode(), DUPLICATE_KEY_ERROR),
    "latin1.yaml": (NOT_UTF8, NOT_UTF8_ERROR),
}


# --- seeded mutants of the examples, for the fuzz tests ----------------------------------

EXAMPLES = Path(__file__).parents[1] / "examples"

FRAGMENTS: list[bytes] = [
    BOMB.encode(),
    alias_bomb(levels=5, fan=7).encode(),
    b"x: &a [*a]\n",
    b"y: *nowhere\n",
    b"z: &d 1\nw: &d 2\n",
    b"- " * 120 + b"x\n",
    b"[" * 300 + b"]" * 300 + b"\n",
    b"{a: " * 150 + b"1" + b"}" * 150 + b"\n",
    b"labels: !!python/object/apply:os.system ['true']\n",
    b"%TAG !p! tag:yaml.org,2002:python/\n---\na: !p!name:os.system\n",
    b"k: !!binary aGk=\n",
    b"k: !Ref other\n",
    b"name: dup\nname: dup\n",
    b"? [complex, key]\n: value\n",
    b"<<: {merged: true}\n",
    b"\xff\xfe\x00b\x00",
    b"\xc3(",
    b"\xed\xa0\x80",  # a UTF-16 surrogate, encoded: not UTF-8
    b"\x00\x01\x02",
    "\ufeff".encode(),
    b"\t- tab\n",
    b"---\n",
    b"...\n",
    b"--- !!set {a}\n",
    b"%YAML 1.3\n---\n",
    b"key: 'unterminated\n",
    b'key: "\\x"\n',
    b"a: b: c\n",
    b"spec: 7\n",
    b"metadata: {name: [x]}\n",
    b"kind: List\napiVersion: v1\nitems: [{kind: List, apiVersion: v1, items: []}]\n",
    b"apiVersion: 3\nkind: {}\n",
    b"1: 2\n",
    b"null: ~\n",
    b"n: .nan\ni: -.inf\nhex: 0x1F\noct: 0o17\nsexa: 1:20\n",
    b"t: 2001-12-14t21:59:43.10-05:00\n",
    b"x: " + b"y" * 5000 + b"\n",
    b"&anchor\n",
    b"*\n",
    b"!\n",
    b"|\n  block\n literal\n",
    b">-\n  folded\n",
    b"- [a, {b: [c, {d: e}]}]\n",
]


def example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.rglob("*.yaml") if "tasks" not in p.parts)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """`data` with one to three random edits, hostile fragments spliced in among them."""
    for _ in range(rng.choice([1, 1, 2, 3])):
        lines = data.split(b"\n")
        at = rng.randrange(len(lines) + 1)
        edit = rng.choice([0, 0, 1, 2, 3, 4, 5, 6])
        fragment = rng.choice(FRAGMENTS)
        if edit == 0:  # where a document ends: a hostile document of its own
            ends = [i for i, line in enumerate(lines) if line == b"---"] + [len(lines)]
            lines.insert(rng.choice(ends), b"---\n" + fragment)
        elif edit == 1:  # anywhere, at some indentation
            indent = b" " * rng.choice([0, 0, 2, 4, 6])
            lines.insert(at, b"\n".join(indent + line for line in fragment.split(b"\n")))
        elif edit == 2 and lines:
            del lines[min(at, len(lines) - 1)]
        elif edit == 3 and lines:
            lines.insert(at, lines[min(at, len(lines) - 1)])
        elif edit == 4:
            lines = lines[:at] if rng.random() < 0.5 else lines
            data = b"\n".join(lines)
            return data[: rng.randrange(len(data) + 1)] if data else data
        elif edit == 5 and data:
            pos = rng.randrange(len(data))
            byte = rng.randrange(256) if rng.random() < 0.3 else rng.randrange(0x20, 0x7F)
            return data[:pos] + bytes([byte]) + data[pos + 1 :]
        else:
            noise = bytes(rng.choice(b" \t\n:-[]{}&*!|>'\"#%@`,?abc\x00\xff") for _ in range(8))
            lines.insert(at, noise)
        data = b"\n".join(lines)
    return data


def mutants(seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """`count` (name, content) pairs, the same for the same seed."""
    rng = random.Random(seed)
    files = example_files()
    for i in range(count):
        path = rng.choice(files)
        yield f"mutant-{seed}-{i}-{path.name}", mutate(path.read_bytes(), rng)
