"""`ami`: parse the command line and call the matching Python API.

Each command is a module of this package with `add_parser(subparsers)` and
`run(args) -> int`; both import what they need lazily, so `ami --help` stays fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from amimesh import __version__

# Command modules, in the order `ami --help` lists them.
COMMANDS = (
    "up",
    "down",
    "status",
    "apply",
    "get",
    "delete",
    "service",
    "revision",
    "route",
    "broker",
    "trigger",
    "event",
    "events",
    "pipeline",
    "pipelinerun",
    "task",
    "taskrun",
    "eventlistener",
    "app",
    "intercept",
    "logs",
    "top",
    "traces",
    "trace",
    "dashboard",
    "analyze",
    "validate",
    "proxy_config",
    "proxy_status",
    "identity",
    "controlplane",
    "node",
)


def _modules(names: Sequence[str] = COMMANDS) -> list[ModuleType]:
    found = []
    for name in names:
        try:
            found.append(importlib.import_module(f"amimesh.cli.cmd_{name}"))
        except ModuleNotFoundError as e:
            if e.name != f"amimesh.cli.cmd_{name}":
                raise
    return found


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (`only`) just one command's: what runs a command
    need not import the other thirty (the control plane and the node agent are
    commands too, started with every `ami up`)."""
    p = argparse.ArgumentParser(prog="ami", description="Ami service mesh")
    p.add_argument("--version", action="version", version=f"ami {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _modules(COMMANDS if only is None else (only,)):
        module.add_parser(sub)
    return p


def _command(argv: Sequence[str]) -> str | None:
    """The command `argv` names first, if it is one."""
    if argv and argv[0].replace("-", "_") in COMMANDS:
        return argv[0].replace("-", "_")
    return None


def dash_values(argv: Sequence[str]) -> list[str]:
    """`--arg --bind` as `--arg=--bind`, for the flags a command lists in `DASH_VALUES`:
    kn's flag parser takes the next word as the value whatever it starts with, where
    argparse would take `--bind` for a flag of its own."""
    out = list(argv)
    if not out or out[0].replace("-", "_") not in COMMANDS:
        return out
    module = importlib.import_module(f"amimesh.cli.cmd_{out[0].replace('-', '_')}")
    flags = getattr(module, "DASH_VALUES", ())
    glued: list[str] = []
    i = 0
    while i < len(out):
        if out[i] == "--":
            glued += out[i:]
            break
        if out[i] in flags and i + 1 < len(out):
            glued.append(f"{out[i]}={out[i + 1]}")
            i += 2
        else:
            glued.append(out[i])
            i += 1
    return glued


# The mesh's own long-lived processes, which build pydantic models as they start.
MESH_PROCESSES = ("controlplane", "node")


def without_pydantic_plugins() -> None:
    """Ami uses no pydantic plugin: spare the process pydantic's search for them, a
    scan of every installed package's entry points (60 ms of CPU) when the first model
    is built. Not by PYDANTIC_DISABLE_PLUGINS: the apps and steps started from here
    would inherit it."""
    from pydantic.plugin import _loader

    if _loader._plugins is None:
        _loader._plugins = {}


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = _command(words)
    if command in MESH_PROCESSES:
        # No cyclic garbage collection while it starts (its imports and first models
        # build a large heap of objects that live for ever: collecting them over and
        # over costs a tenth of the start's CPU); `gcstart.started()` turns it back on.
        gc.disable()
        without_pydantic_plugins()
    args = parser(command).parse_args(dash_values(words))
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
