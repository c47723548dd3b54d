"""Restart policy and backoff, with a fake clock."""

from __future__ import annotations

import pytest

from amimesh.runtime.policy import Backoff, Decision, Restarts, outcome


@pytest.mark.parametrize(
    ("policy", "code", "expected"),
    [
        ("Always", 0, "restart"),
        ("Always", 1, "restart"),
        ("OnFailure", 0, "completed"),
        ("OnFailure", 2, "restart"),
        ("OnFailure", -9, "restart"),
        ("Never", 0, "completed"),
        ("Never", 1, "exited"),
    ],
)
def test_outcome(policy: str, code: int, expected: str) -> None:
    assert outcome(policy, code) == expected  # type: ignore[arg-type]


def test_backoff_doubles_up_to_the_cap() -> None:
    r = Restarts("Always", Backoff(initial_s=0.5, max_s=4.0, reset_after_s=60.0))
    now = 0.0
    delays = []
    for _ in range(6):
        r.started(now)
        now += 1.0  # crashes after a second
        d = r.exited(1, now)
        delays.append(d.delay_s)
        now += d.delay_s
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert r.count == 6


def test_backoff_resets_after_a_long_enough_run() -> None:
    r = Restarts("OnFailure", Backoff(initial_s=0.5, reset_after_s=60.0))
    r.started(0.0)
    assert r.exited(1, 1.0) == Decision("restart", 0.5)
    r.started(1.5)
    assert r.exited(1, 2.0) == Decision("restart", 1.0)
    r.started(3.0)
    assert r.exited(1, 63.0) == Decision("restart", 0.5)  # ran 60 s: starts over
    assert r.count == 3


def test_no_restart_is_not_counted() -> None:
    r = Restarts("OnFailure")
    r.started(0.0)
    assert r.exited(0, 1.0) == Decision("completed")
    never = Restarts("Never")
    never.started(0.0)
    assert never.exited(3, 1.0) == Decision("exited")
    assert r.count == never.count == 0
