"""A config source that mirrors a directory of YAML files into the store, live.

Each file is one store source: editing a file replaces what it defines; breaking a
file records its errors and keeps what it defined before; deleting a file removes
what it defined.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import watchfiles

from amimesh.config.store import Store
from amimesh.resources import ConfigError, files, load_path

log = logging.getLogger(__name__)

SOURCE_PREFIX = "file:"


def yaml_files(root: Path) -> list[Path]:
    """The YAML files under `root` (or `root` itself), sorted, hidden ones skipped."""
    if root.is_file():
        return [root]
    return files.yaml_files(root)


class DirectorySource:
    def __init__(self, store: Store, root: Path, *, debounce_ms: int = 50) -> None:
        self._store = store
        self._root = root
        self._debounce_ms = debounce_ms

    def _source(self, path: Path) -> str:
        return SOURCE_PREFIX + str(path)

    def sync(self) -> list[ConfigError]:
        """Load every file now, drop sources for files that are gone; returns all errors."""
        present = yaml_files(self._root)
        wanted = {self._source(p) for p in present}
        for source in self._store.sources():
            if source.startswith(SOURCE_PREFIX) and source not in wanted:
                if self._is_ours(source):
                    self._store.remove_source(source)
        errors: list[ConfigError] = []
        for path in present:
            errors += self._store.set_source(self._source(path), load_path(path))
        return errors

    def _is_ours(self, source: str) -> bool:
        path = Path(source[len(SOURCE_PREFIX) :])
        root = self._root if self._root.is_dir() else self._root.parent
        try:
            path.relative_to(root)
        except ValueError:
            return False
        return True

    async def watch(self, stop: asyncio.Event) -> None:
        """Re-sync on every change under the root until `stop` is set."""
        async for _changes in watchfiles.awatch(
            self._root,
            stop_event=stop,
            debounce=self._debounce_ms,
            step=20,
            recursive=True,
        ):
            errors = self.sync()
            if errors:
                log.warning("%d config error(s) under %s", len(errors), self._root)
            else:
                log.info("config reloaded from %s", self._root)
