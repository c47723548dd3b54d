"""The one edge of this room that reads files: `load_path`."""

from __future__ import annotations

import os
from pathlib import Path

from amimesh.resources.errors import ConfigError, ParseResult
from amimesh.resources.parse import Collector
from amimesh.resources.registry import KINDS, KindRegistry

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

    Problems reading a file are errors in the result, like problems in its content.
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
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            collector.add_error(
                ConfigError(str(file), message=f"is not UTF-8 text (byte {err.start})")
            )
            continue
        except OSError as err:
            collector.add_error(ConfigError(str(file), message=f"cannot be read: {err.strerror}"))
            continue
        collector.add_text(text, str(file))
    return collector.result()
