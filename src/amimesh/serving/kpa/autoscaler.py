"""One revision's autoscaler: metric windows feeding the decider (pure; time is
handed in, nothing reads a clock).

Knative's collector (`pkg/autoscaler/metrics/collector.go`) keeps a stable and a
panic window of one-second buckets per revision and the decider asks it for both
averages; this joins the two. A sample is the revision's total for the metric its
settings name, over one scrape: for `concurrency`, the requests in flight summed over
its instances (less those the activator already reported); for `rps`, the requests
that second. Samples in the same second add up. As Knative scrapes every second
while the revision has instances, a sample is recorded every second then, zeros
included; with no instance there is nothing to scrape and nothing is recorded.

No decision is made (None) while the stable window holds no sample, unless the
target burst capacity is -1: then the revision is never scraped, and no sample means
no load.
"""

from __future__ import annotations

from amimesh.serving.kpa.buckets import LinearBuckets, WeightedBuckets
from amimesh.serving.kpa.decider import Decider, Decision
from amimesh.serving.kpa.scaling_settings import ScalingSettings


class Autoscaler:
    """Record samples, then ask for a decision."""

    def __init__(
        self, settings: ScalingSettings, *, ready: int = 0, now: float | None = None
    ) -> None:
        """`ready` is how many instances are ready now: with more than one the
        autoscaler starts in panic (see `decider`), and needs `now`."""
        windows = (
            WeightedBuckets if settings.aggregation == "weighted-exponential" else LinearBuckets
        )
        self._stable: LinearBuckets = windows(settings.stable_window_s)
        self._panic: LinearBuckets = windows(settings.panic_window_s)
        self._decider = Decider(settings, ready=ready, now=now)

    @property
    def settings(self) -> ScalingSettings:
        return self._decider.settings

    @property
    def decider(self) -> Decider:
        return self._decider

    def record(self, now: float, value: float) -> None:
        """One sample of the revision's metric, taken at `now`."""
        self._stable.record(now, value)
        self._panic.record(now, value)

    def observed(self, now: float) -> tuple[float, float] | None:
        """The stable and panic averages at `now`; None without data to go on."""
        if self._stable.is_empty(now) and not self.settings.activator_always_in_path:
            return None
        return self._stable.window_average(now), self._panic.window_average(now)

    def scale(self, now: float, ready: int) -> Decision | None:
        """The decision at `now` with `ready` instances ready; None without data."""
        observed = self.observed(now)
        if observed is None:
            return None
        return self._decider.scale(now, ready, *observed)

    def update(self, settings: ScalingSettings, now: float) -> None:
        """New settings: windows resized (keeping what still fits), the decider
        told. The aggregation algorithm stays as made (a revision's is immutable)."""
        self._stable.resize_window(settings.stable_window_s, now)
        self._panic.resize_window(settings.panic_window_s, now)
        self._decider.update(settings)
