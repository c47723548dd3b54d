"""Live reload in the node agent: watch each opted-in workload's working directory and
say when it changed (`reload_rules` decides what counts and when a burst settled).

    watch = Watches(on_change=lambda key: ...)
    watch.set({key: Path("apps/web"), ...})     # after every config change
    await watch.close()

A watch polls its tree (`os.scandir`, bounded: `reload_rules.Bounds`) every
`POLL_S` in a worker thread: no recursion without limit into a huge tree, no inotify
watch per directory, and the same on every platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from amimesh.runtime import reload_rules
from amimesh.runtime.reload_rules import Bounds, Debounce

log = logging.getLogger(__name__)

POLL_S = 0.25
BOUNDS = Bounds()


def scan(root: Path, bounds: Bounds = BOUNDS) -> dict[str, tuple[int, int]]:
    """(size, mtime in ns) of every file under `root` that counts, within `bounds`;
    symbolic links to directories are not followed."""
    out: dict[str, tuple[int, int]] = {}
    stack: list[tuple[Path, str, int]] = [(root, "", 0)]
    while stack:
        directory, prefix, depth = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth + 1 < bounds.max_depth and not reload_rules.ignored_dir(entry.name):
                        subdirs.append((Path(entry.path), f"{prefix}{entry.name}/", depth + 1))
                    continue
                if reload_rules.ignored_file(entry.name):
                    continue
                st = entry.stat()
            except OSError:
                continue
            out[prefix + entry.name] = (st.st_size, st.st_mtime_ns)
            if len(out) >= bounds.max_files:
                return out
        stack.extend(reversed(subdirs))
    return out


class Watches:
    """One polling watch per key (a workload), calling `on_change(key)` once a burst
    of changes under its directory has settled."""

    def __init__(
        self, on_change: Callable[[str], None], *, bounds: Bounds = BOUNDS, poll_s: float = POLL_S
    ) -> None:
        self._on_change = on_change
        self._bounds = bounds
        self._poll_s = poll_s
        self._tasks: dict[str, tuple[Path, asyncio.Task[None]]] = {}

    def set(self, wanted: Mapping[str, Path]) -> None:
        """Watch exactly `wanted` (key → directory)."""
        for key in list(self._tasks):
            if key not in wanted or self._tasks[key][0] != wanted[key]:
                self._tasks.pop(key)[1].cancel()
        for key, root in wanted.items():
            if key not in self._tasks:
                task = asyncio.create_task(self._watch(key, root), name=f"reload-{key}")
                self._tasks[key] = (root, task)
                log.info("live reload: watching %s for %s", root, key)

    async def _watch(self, key: str, root: Path) -> None:
        loop = asyncio.get_running_loop()
        tree = await asyncio.to_thread(scan, root, self._bounds)
        if len(tree) >= self._bounds.max_files:
            log.warning(
                "live reload: %s has more than %d files: only the first are watched",
                root,
                self._bounds.max_files,
            )
        debounce = Debounce()
        while True:
            await asyncio.sleep(self._poll_s)
            now_tree = await asyncio.to_thread(scan, root, self._bounds)
            changed = reload_rules.changes(tree, now_tree)
            tree = now_tree
            now = loop.time()
            if changed:
                log.debug("live reload: %s changed: %s", key, ", ".join(changed[:5]))
                debounce = debounce.changed(now)
            if debounce.due(now):
                debounce = debounce.fired()
                self._on_change(key)

    async def close(self) -> None:
        tasks = [t for _, t in self._tasks.values()]
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
