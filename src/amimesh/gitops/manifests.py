"""Which files of an Application's path are manifests, within what bounds, and what
they define. Pure.

    chosen = select(entries, app.spec.source.directory)   # or Refused, before any read
    result = parse(commit, path, [(e, blob), ...], "prod") # the bounded loader's result

As Argo CD reads a directory: files ending in .yaml, .yml or .json, only the path's
own files unless `recurse`, then `exclude` and `include` matched on the path relative
to the Application's path. Symbolic links and submodules are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from amimesh.resources import ConfigError, ParseResult
from amimesh.resources.argocd import Directory
from amimesh.resources.globs import matches
from amimesh.resources.parse import Collector
from amimesh.resources.yaml_limits import MAX_BYTES, TOO_BIG

SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILES = 1000  # manifest files of one Application
MAX_TOTAL_BYTES = 64 * 1024 * 1024  # their combined size
_REGULAR = ("100644", "100755")


@dataclass(frozen=True)
class Entry:
    """A file of a tree: its path relative to the listed directory, blob id, size, mode."""

    path: str
    oid: str
    size: int
    mode: str


@dataclass(frozen=True)
class Refused:
    """Why nothing of a revision is read."""

    message: str


def select(entries: Sequence[Entry], directory: Directory | None) -> list[Entry] | Refused:
    d = directory or Directory()
    chosen: list[Entry] = []
    total = 0
    for e in sorted(entries, key=lambda e: e.path):
        if not e.path.lower().endswith(SUFFIXES) or e.mode not in _REGULAR:
            continue
        if not d.recurse and "/" in e.path:
            continue
        if d.exclude and matches(d.exclude, e.path):
            continue
        if d.include and not matches(d.include, e.path):
            continue
        chosen.append(e)
        total += e.size
        if len(chosen) > MAX_FILES:
            return Refused(f"more than {MAX_FILES} manifest files")
        if total > MAX_TOTAL_BYTES:
            return Refused(f"the manifests are larger than {MAX_TOTAL_BYTES} bytes together")
    return chosen


def file_label(commit: str, path: str, rel: str) -> str:
    """How errors name a file: git's `REV:PATH` (`3f2a1bc:web/vs.yaml`)."""
    parts = [p for p in (*path.split("/"), rel) if p not in ("", ".")]
    return f"{commit[:7]}:{'/'.join(parts)}"


def parse(
    commit: str,
    path: str,
    files: Sequence[tuple[Entry, bytes]],
    default_namespace: str = "",
) -> ParseResult:
    """Every resource of the chosen files (documents without a namespace get
    `default_namespace`), through Ami's bounded loader; errors name `REV:PATH`."""
    collector = Collector(default_namespace=default_namespace)
    for entry, data in files:
        label = file_label(commit, path, entry.path)
        if len(data) > MAX_BYTES:
            collector.add_error(ConfigError(label, message=TOO_BIG))
            continue
        collector.add_bytes(data, label)
    return collector.result()
