"""Coalesce bursts of change notifications into one run of an action."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class Debouncer:
    """Runs `action` once the notifications stop for `delay` seconds.

    A steady stream of notifications cannot postpone the action beyond `max_delay`
    after the first one. Notifications that arrive while the action runs cause one
    more run afterwards. `on_idle` is called each time a run ends with nothing
    pending. The debouncer owns one task, made by `start()` and ended by `close()`.
    """

    def __init__(
        self,
        action: Callable[[], Awaitable[None]],
        *,
        delay: float,
        max_delay: float | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        if delay < 0:
            raise ValueError("delay must be >= 0")
        self._action = action
        self._delay = delay
        self._max_delay = max(delay, max_delay if max_delay is not None else 10 * delay)
        self._on_idle = on_idle
        self._triggered = asyncio.Event()  # a notification since the last check
        self._pending = False  # a notification the action has not yet started on
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    def start(self) -> None:
        """Start the task that waits for notifications (needs a running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="xds-debouncer")

    async def close(self) -> None:
        """Cancel the task and wait for it to end; pending notifications are dropped."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def trigger(self) -> None:
        """Note a change; must be called on the loop's thread."""
        self._pending = True
        self._triggered.set()

    @property
    def idle(self) -> bool:
        """Nothing noted that the action has not started on, and the action not running."""
        return not self._pending and not self._running

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._triggered.wait()
            cap = loop.time() + self._max_delay
            while True:
                self._triggered.clear()
                try:
                    async with asyncio.timeout_at(min(loop.time() + self._delay, cap)):
                        await self._triggered.wait()
                except TimeoutError:
                    break
                if loop.time() >= cap:
                    break
            self._triggered.clear()
            self._pending = False
            self._running = True
            try:
                await self._action()
            except Exception:
                logger.exception("debounced action failed")
            finally:
                self._running = False
                self.runs += 1
            if self._on_idle is not None and not self._pending:
                self._on_idle()
