"""Run an action after every change of the store, on the event loop: a burst of
changes (from any thread) is one run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from amimesh.config.store import Store

log = logging.getLogger(__name__)


class Follower:
    """Calls `action` on `loop` after store changes, once per burst; `what` names it
    in the log when it fails."""

    def __init__(self, store: Store, action: Callable[[], None], what: str) -> None:
        self._store = store
        self._action = action
        self._what = what
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = False
        self._unsubscribe: Callable[[], None] = lambda: None

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._unsubscribe = self._store.subscribe(self._on_change)

    def close(self) -> None:
        self._unsubscribe()
        self._unsubscribe = lambda: None

    def _on_change(self) -> None:
        loop = self._loop
        if loop is None or self._due:
            return
        self._due = True
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        self._due = False
        try:
            self._action()
        except Exception:
            log.exception("%s: reconcile failed", self._what)
