"""The one edge of this room that reads files: `load_path`."""

from __future__ import annotations

import os
from pathlib import Path

from amimesh.resources.errors import ConfigError, ParseResult
from amimesh.resources.parse import Collector
from amimesh.resources.registry import KINDS, KindRegistry
from amimesh.resources.yaml_limits import MAX_BYTES, TOO_BIG

SUFFIXES = (".yaml", ".yml")


def yaml_files(root: Path) -> list[Path]:
    """YAML files under the directory `root`, recursively, sorted; hidden ones skipped."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(SUFFIXES):
                found.append(Path(dirpath, name))
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def load_path(path: str | os.PathLike[str], kinds: KindRegistry = KINDS) -> ParseResult:
    """Every resource in a YAML file, or in the YAML files under a directory.

    Problems reading a file are errors in the result, like problems in its content. A
    file larger than `MAX_BYTES` is refused without being read.
    """
    root = Path(path)
    collector = Collector(kinds)
    if root.is_dir():
        files = yaml_files(root)
    elif root.exists():
        files = [root]
    else:
        collector.add_error(ConfigError(str(root), message="no such file or directory"))
        return collector.result()
    for file in files:
        try:
            data = read_bounded(file)
        except OSError as err:
            collector.add_error(ConfigError(str(file), message=f"cannot be read: {err.strerror}"))
            continue
        if data is None:
            collector.add_error(ConfigError(str(file), message=TOO_BIG))
            continue
        collector.add_bytes(data, str(file))
    return collector.result()


def read_bounded(file: Path, limit: int = MAX_BYTES) -> bytes | None:
    """The file's content, or None when it has more than `limit` bytes (at most one byte
    past the limit is read, whatever its size: it may be growing, or not a regular file)."""
    with file.open("rb") as f:
        if os.fstat(f.fileno()).st_size > limit:
            return None
        data = f.read(limit + 1)
    return None if len(data) > limit else data
