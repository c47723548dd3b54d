"""Live reload's decisions, pure: which files count, what changed between two looks
at a tree, and when a burst of changes has settled. (Which workloads are watched is
`resources.workload.reload_wanted`.)

`config.watch` looks at the trees; nothing here reads a file or a clock: trees and
times are handed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Directories never looked into: caches, version control, virtual environments.
IGNORED_DIRS = frozenset(
    {
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".idea",
        ".vscode",
    }
)
# Compiled files and what editors write beside the file being edited.
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".swo", ".swx", ".tmp", ".bak", "~")
_IGNORED_PREFIXES = (".#", ".~", "#")
_VIM_PROBE = "4913"  # the file vim creates to test that it may write a directory


def ignored_dir(name: str) -> bool:
    return name in IGNORED_DIRS


def ignored_file(name: str) -> bool:
    """Compiled files, editors' swap, backup and lock files: never a change."""
    return (
        name == _VIM_PROBE
        or name.endswith(_IGNORED_SUFFIXES)
        or name.startswith(_IGNORED_PREFIXES)
        or (name.startswith(".") and name.endswith(".swp"))
    )


# relative path → (size, modification time in ns)
Tree = Mapping[str, tuple[int, int]]


@dataclass(frozen=True)
class Bounds:
    """How far a watch looks: a tree bigger than this is watched only in part (the
    first `max_files` files in name order, `max_depth` directories deep)."""

    max_files: int = 2000
    max_depth: int = 8


def changes(before: Tree, after: Tree) -> list[str]:
    """The paths added, removed or modified from `before` to `after`, sorted."""
    out = {p for p in after if before.get(p) != after[p]}
    out |= {p for p in before if p not in after}
    return sorted(out)


@dataclass(frozen=True)
class Debounce:
    """A burst of changes settles `quiet_s` after its last change (an editor's save is
    several writes; a `git checkout` many), or at the latest `max_wait_s` after its
    first, so that a file written without pause still gets a reload."""

    quiet_s: float = 0.3
    max_wait_s: float = 3.0
    first: float | None = None
    last: float | None = None

    def changed(self, now: float) -> Debounce:
        first = self.first if self.first is not None else now
        return Debounce(self.quiet_s, self.max_wait_s, first, now)

    def due(self, now: float) -> bool:
        if self.first is None or self.last is None:
            return False
        return now - self.last >= self.quiet_s or now - self.first >= self.max_wait_s

    def fired(self) -> Debounce:
        return Debounce(self.quiet_s, self.max_wait_s)
