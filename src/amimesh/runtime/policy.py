"""Restart decisions for an instance that exited: pure, with the clock passed in.

Like Kubernetes' container restart policy: `Always` restarts on any exit, `OnFailure`
only on a non-zero one, `Never` never. Restarts back off exponentially (0.5 s, 1 s, 2 s,
... up to 30 s), and the delay starts over once an instance has run 60 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RestartPolicy = Literal["Always", "OnFailure", "Never"]
Outcome = Literal["restart", "completed", "exited"]


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    reset_after_s: float = 60.0


def outcome(policy: RestartPolicy, code: int) -> Outcome:
    """What follows an exit with `code`: a restart, `completed` (done, successfully)
    or `exited` (done, failed, no restart)."""
    if policy == "Always" or (policy == "OnFailure" and code != 0):
        return "restart"
    return "completed" if code == 0 else "exited"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    delay_s: float = 0.0


class Restarts:
    """Counts one instance's restarts and spaces them out."""

    def __init__(self, policy: RestartPolicy, backoff: Backoff | None = None) -> None:
        self.policy = policy
        self.backoff = backoff or Backoff()
        self.count = 0
        self._next_delay = self.backoff.initial_s
        self._started_at: float | None = None

    def started(self, now: float) -> None:
        self._started_at = now

    def exited(self, code: int, now: float) -> Decision:
        """Decide after an exit at `now`; a restart is counted when it is decided."""
        result = outcome(self.policy, code)
        if result != "restart":
            return Decision(result)
        b = self.backoff
        ran = now - self._started_at if self._started_at is not None else 0.0
        if ran >= b.reset_after_s:
            self._next_delay = b.initial_s
        delay = self._next_delay
        self._next_delay = min(delay * b.factor, b.max_s)
        self.count += 1
        return Decision("restart", delay)
