"""Live reload's watch of a program's directory: say when it changed (`watch_rules`
decides what counts and when a burst settled), and what its content is (a digest).
The node agent watches Workloads' working directories (and restarts their
instances), the control plane Knative Services' (and makes a new revision).

    watch = Watches(on_change=lambda key: ...)
    watch.set({key: Path("apps/web"), ...})     # after every config change
    await watch.close()
    content_digest(Path("apps/web"))            # in a worker thread

A watch polls its tree (`os.scandir`, bounded: `watch_rules.Bounds`) every
`POLL_S` in a worker thread: no recursion without limit into a huge tree, no inotify
watch per directory, and the same on every platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from amimesh.config import watch_rules
from amimesh.config.watch_rules import Bounds, Debounce

log = logging.getLogger(__name__)

POLL_S = 0.25
BOUNDS = Bounds()
# A digest reads at most this much of a tree's content; files past it count by their
# size and modification time.
DIGEST_MAX_BYTES = 16 << 20


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
                    if depth + 1 < bounds.max_depth and not watch_rules.ignored_dir(entry.name):
                        subdirs.append((Path(entry.path), f"{prefix}{entry.name}/", depth + 1))
                    continue
                if watch_rules.ignored_file(entry.name) or entry.is_dir():
                    continue  # (a symbolic link to a directory: not followed)
                st = entry.stat()
            except OSError:
                continue
            out[prefix + entry.name] = (st.st_size, st.st_mtime_ns)
            if len(out) >= bounds.max_files:
                return out
        stack.extend(reversed(subdirs))
    return out


def content_digest(root: Path, bounds: Bounds = BOUNDS) -> str:
    """A digest of what `scan` sees under `root` (names and contents): the same files
    give the same digest, across restarts too."""
    h = hashlib.sha256()
    budget = DIGEST_MAX_BYTES
    for rel, (size, mtime_ns) in sorted(scan(root, bounds).items()):
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        content = b""
        if size <= budget:
            try:
                content = (root / rel).read_bytes()[: budget + 1]
            except OSError:
                content = b""
            budget -= len(content)
            h.update(hashlib.sha256(content).digest())
        else:
            h.update(f"{size}:{mtime_ns}".encode())
    return h.hexdigest()[:16]


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
            changed = watch_rules.changes(tree, now_tree)
            tree = now_tree
            now = loop.time()
            if changed:
                log.debug("live reload: %s changed: %s", key, ", ".join(changed[:5]))
                debounce = debounce.changed(now)
            if debounce.due(now):
                debounce = debounce.fired()
                self._on_change(key)

    def cancel(self) -> None:
        """Stop every watch (their tasks end on the loop's next turns)."""
        for _, task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def close(self) -> None:
        tasks = [t for _, t in self._tasks.values()]
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
