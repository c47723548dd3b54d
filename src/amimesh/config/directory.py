"""A config source that mirrors a directory of YAML files into the store, live.

Each file is one store source: editing a file replaces what it defines; breaking a
file records its errors and keeps what it defined before; deleting a file removes
what it defined.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable
from pathlib import Path

from amimesh.config.store import Store
from amimesh.resources import ConfigError, files, load_path

log = logging.getLogger(__name__)

SOURCE_PREFIX = "file:"
SUFFIXES = (".yaml", ".yml")


def yaml_files(root: Path, exclude_dirs: Collection[str] = ()) -> list[Path]:
    """The YAML files under `root` (or `root` itself), sorted, hidden ones skipped, and
    those under a directory named in `exclude_dirs` (at any depth below `root`)."""
    if root.is_file():
        return [root]
    return [p for p in files.yaml_files(root) if not _excluded(p, root, exclude_dirs)]


def _excluded(path: Path, root: Path, exclude_dirs: Collection[str]) -> bool:
    if not exclude_dirs:
        return False
    try:
        parents = path.relative_to(root).parts[:-1]
    except ValueError:
        return False
    return any(part in exclude_dirs for part in parents)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


# How long the watcher waits for a first change before it answers with none, so that
# the catch-up sync runs (`watch`); later timeouts are ignored.
CATCH_UP_MS = 500


class DirectorySource:
    """`exclude_dirs`: names of directories whose files are not config (e.g. `tasks`)."""

    def __init__(
        self,
        store: Store,
        root: Path,
        *,
        debounce_ms: int = 50,
        exclude_dirs: Collection[str] = (),
    ) -> None:
        self._store = store
        self._root = root
        self._debounce_ms = debounce_ms
        self._exclude = frozenset(exclude_dirs)
        # Each file as it was when last loaded (inode, size, mtime): a sync skips the
        # files that have not changed since, which the store already holds.
        self._loaded: dict[Path, tuple[int, int, int]] = {}

    def _source(self, path: Path) -> str:
        return SOURCE_PREFIX + str(path)

    def sync(self) -> list[ConfigError]:
        """Load every file changed since it was last loaded (all, the first time), drop
        sources for files that are gone; returns the errors of the files loaded."""
        present = yaml_files(self._root, self._exclude)
        wanted = {self._source(p) for p in present}
        for source in self._store.sources():
            if source.startswith(SOURCE_PREFIX) and source not in wanted:
                if self._is_ours(source):
                    self._loaded.pop(Path(source[len(SOURCE_PREFIX) :]), None)
                    self._store.remove_source(source)
        errors: list[ConfigError] = []
        for path in present:
            seen = _stamp(path)
            if seen is not None and self._loaded.get(path) == seen:
                continue
            errors += self._load(path, seen)
        return errors

    def _load(self, path: Path, seen: tuple[int, int, int] | None) -> list[ConfigError]:
        errors = self._store.set_source(self._source(path), load_path(path))
        if seen is not None:
            self._loaded[path] = seen
        return errors

    def _is_ours(self, source: str) -> bool:
        path = Path(source[len(SOURCE_PREFIX) :])
        root = self._root if self._root.is_dir() else self._root.parent
        try:
            path.relative_to(root)
        except ValueError:
            return False
        return True

    def reload(self, paths: Iterable[Path]) -> list[ConfigError]:
        """Reload just these files (gone ones are removed); returns their errors."""
        errors: list[ConfigError] = []
        for path in sorted(set(paths)):
            if path.suffix not in SUFFIXES or _hidden(path, self._root):
                continue
            if self._root.is_dir() and _excluded(path, self._root, self._exclude):
                continue
            if path.is_file():
                errors += self._load(path, _stamp(path))
            else:
                self._loaded.pop(path, None)
                self._store.remove_source(self._source(path))
        return errors

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload changed files until `stop` is set.

        Only the files named by the change events are parsed again; a change to a
        directory itself (moved in or out) re-syncs everything. The first time the
        watcher answers (a change, or half a second of none) everything is synced once:
        a file written between the first load and the watcher's start (while the
        control plane was starting) is read then, not missed until its next change
        (the files unchanged since they were loaded are not parsed again).
        """
        import watchfiles  # not on the way to the first config: the watch starts later

        caught_up = False
        async for changes in watchfiles.awatch(
            self._root,
            stop_event=stop,
            debounce=self._debounce_ms,
            step=20,
            recursive=True,
            rust_timeout=CATCH_UP_MS,
            yield_on_timeout=True,
        ):
            if not caught_up:
                caught_up = True
                errors = self.sync()
                if errors:
                    log.warning("%d config error(s) under %s", len(errors), self._root)
                continue
            if not changes:
                continue
            paths = [Path(p) for _, p in changes]
            if any(p.is_dir() or p == self._root for p in paths):
                errors = self.sync()
            else:
                errors = self.reload(paths)
            if errors:
                log.warning("%d config error(s) under %s", len(errors), self._root)
            else:
                log.info("config reloaded from %s", self._root)


def _hidden(path: Path, root: Path) -> bool:
    base = root if root.is_dir() else root.parent
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        return True
    return any(part.startswith(".") for part in parts)
