"""The KPA's scaling decision from observed load (pure; time is handed in).

Follows knative/serving `pkg/autoscaler/scaling/autoscaler.go` (`Scale`), given the
stable and panic averages its metric client would return:

- desired = ceil(observed / target) for the stable and the panic window, each held
  within [floor(ready / max-scale-down-rate), ceil(ready × max-scale-up-rate)], with
  `ready` counted as at least 1; an unreachable revision has no lower bound. With an
  `activation-scale` above 1, a non-zero desire is at least that.
- Panic starts when ceil(panic / target) / ready reaches the panic threshold, is
  extended every time it is still reached, and ends once a whole stable window has
  passed since. In panic the larger of the two desires counts, and the scale never
  goes down.
- `scale-down-delay` (reachable revisions only): the desire is the largest of the
  last delay's worth of desires, one per second.
- Excess burst capacity = floor(ready × total − target-burst-capacity − panic
  observation) with the real ready count; 0 when the TBC is 0, -1 when it is -1.

A decider made while more than one instance is ready starts in panic with that many
as its floor, so that a restarted autoscaler does not scale down for lack of history.
`initial_excess_burst_capacity` is the EBC before any decision
(`pkg/autoscaler/scaling/multiscaler.go`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amimesh.serving.kpa.max_window import MaxTimeWindow
from amimesh.serving.kpa.scaling_settings import ScalingSettings


@dataclass(frozen=True)
class Decision:
    """One decision: how many instances, the excess burst capacity (negative: keep
    the activator in the path), whether in panic, and the averages it came from."""

    desired: int
    excess_burst_capacity: int
    panic: bool
    observed_stable: float
    observed_panic: float


class Decider:
    """The decision's state across ticks: panic mode and the scale-down delay."""

    def __init__(
        self, settings: ScalingSettings, *, ready: int = 0, now: float | None = None
    ) -> None:
        if ready > 1 and now is None:
            raise ValueError("a decider made with ready instances starts in panic: give `now`")
        self._settings = settings
        self._panic_since = now if ready > 1 else None
        self._max_panic_pods = ready
        # Made once, as Knative does: a later change of the delay does not resize it.
        self._delay = (
            MaxTimeWindow(settings.scale_down_delay_s) if settings.scale_down_delay_s > 0 else None
        )

    @property
    def settings(self) -> ScalingSettings:
        return self._settings

    @property
    def panic_since(self) -> float | None:
        """When the panic was last (re)started; None when not in panic."""
        return self._panic_since

    def update(self, settings: ScalingSettings) -> None:
        """Decide with new settings from the next decision on."""
        self._settings = settings

    def scale(
        self, now: float, ready: int, observed_stable: float, observed_panic: float
    ) -> Decision:
        """The decision at `now`, with `ready` instances ready and these averages."""
        s = self._settings
        pods = max(1.0, float(ready))
        max_up = math.ceil(s.max_scale_up_rate * pods)
        max_down = math.floor(pods / s.max_scale_down_rate) if s.reachable else 0
        stable_want = math.ceil(observed_stable / s.target)
        panic_want = math.ceil(observed_panic / s.target)
        stable_pods = min(max(stable_want, max_down), max_up)
        panic_pods = min(max(panic_want, max_down), max_up)
        if s.activation_scale > 1:
            if stable_want > 0 and s.activation_scale > stable_pods:
                stable_pods = s.activation_scale
            if panic_want > 0 and s.activation_scale > panic_pods:
                panic_pods = s.activation_scale

        over_threshold = panic_want / pods >= s.panic_threshold
        if over_threshold:
            self._panic_since = now
        elif self._panic_since is not None and self._panic_since + s.stable_window_s < now:
            self._panic_since = None
            self._max_panic_pods = 0

        desired = stable_pods
        if self._panic_since is not None:
            # The stable window can see more than the panic one; provide for both.
            desired = max(desired, panic_pods)
            self._max_panic_pods = max(self._max_panic_pods, desired)
            desired = self._max_panic_pods

        if s.reachable and self._delay is not None:
            self._delay.record(now, desired)
            desired = self._delay.current()

        return Decision(
            desired=desired,
            excess_burst_capacity=excess_burst_capacity(s, ready, observed_panic),
            panic=self._panic_since is not None,
            observed_stable=observed_stable,
            observed_panic=observed_panic,
        )


def excess_burst_capacity(settings: ScalingSettings, ready: int, observed_panic: float) -> int:
    """What the ready instances can take beyond the observed panic load and the
    target burst capacity; negative means the activator must stay in the path."""
    tbc = settings.target_burst_capacity
    if tbc == 0:
        return 0
    if tbc < 0:
        return -1
    return math.floor(ready * settings.total - tbc - observed_panic)


def initial_excess_burst_capacity(settings: ScalingSettings) -> int:
    """The EBC before the first decision: what `initial_scale` instances would leave."""
    tbc = settings.target_burst_capacity
    if tbc in (-1, 0):
        return int(tbc)
    return int(settings.initial_scale * settings.total - tbc)
