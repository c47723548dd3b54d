"""Debouncing of change notifications."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from amimesh.xds.debounce import Debouncer


class Action:
    def __init__(self) -> None:
        self.runs = 0
        self.ran = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def __call__(self) -> None:
        self.started.set()
        await self.release.wait()
        self.runs += 1
        self.ran.set()


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Debouncer]]:
    made: list[Debouncer] = []

    def build(
        action: Callable[[], Awaitable[None]],
        *,
        delay: float,
        max_delay: float | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> Debouncer:
        debouncer = Debouncer(action, delay=delay, max_delay=max_delay, on_idle=on_idle)
        debouncer.start()
        made.append(debouncer)
        return debouncer

    yield build
    for debouncer in made:
        await debouncer.close()
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def wait(event: asyncio.Event) -> None:
    async with asyncio.timeout(2):
        await event.wait()


async def test_a_burst_runs_the_action_once(make: Callable[..., Debouncer]) -> None:
    action = Action()
    idle = asyncio.Event()
    debouncer = make(action, delay=0.02, on_idle=idle.set)
    for _ in range(50):
        debouncer.trigger()
        await asyncio.sleep(0)
        # Not idle while the quiet period runs, though nothing new arrives.
        assert not debouncer.idle
    await wait(idle)
    assert action.runs == 1 and debouncer.runs == 1 and debouncer.idle


async def test_a_change_during_the_run_causes_one_more_run(
    make: Callable[..., Debouncer],
) -> None:
    action = Action()
    action.release.clear()
    idle = asyncio.Event()
    debouncer = make(action, delay=0.0, on_idle=idle.set)
    debouncer.trigger()
    await wait(action.started)
    debouncer.trigger()
    debouncer.trigger()
    action.release.set()
    await wait(idle)
    assert action.runs == 2


async def test_steady_changes_cannot_postpone_the_action_forever(
    make: Callable[..., Debouncer],
) -> None:
    action = Action()
    debouncer = make(action, delay=0.05, max_delay=0.1)
    async with asyncio.timeout(2):
        # Notifications every 10 ms never leave a 50 ms quiet period.
        while not action.ran.is_set():
            debouncer.trigger()
            await asyncio.sleep(0.01)
    assert action.runs == 1


async def test_a_failing_action_is_logged_and_the_debouncer_goes_on(
    make: Callable[..., Debouncer], caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0
    idle = asyncio.Event()

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")

    debouncer = make(flaky, delay=0.0, on_idle=idle.set)
    debouncer.trigger()
    await wait(idle)
    idle.clear()
    debouncer.trigger()
    await wait(idle)
    assert calls == 2
    assert "debounced action failed" in caplog.text


def test_negative_delay_is_refused() -> None:
    async def nothing() -> None:
        pass

    with pytest.raises(ValueError):
        Debouncer(nothing, delay=-1)
