"""A revision's scaling status, and where its traffic goes (pure; time is handed in).

Follows knative/serving `pkg/reconciler/autoscaling/kpa/kpa.go`:

- `Active` is activating, active or inactive (Knative's PodAutoscaler `Active`
  condition: Unknown, True, False), with the time it last changed. A new revision
  is activating. With `want` the scale asked for (-1: unknown) and `ready` the ready
  instances against the threshold max(min-scale, initial scale until first reached,
  else 1): want 0 (or a threshold of 0) makes it inactive, fewer ready than the
  threshold activating, enough ready active; an unknown want leaves an inactive
  revision inactive (`computeActiveCondition`).
- The activator stays in the revision's path unless the scale wanted is above 0 and
  the excess burst capacity is not negative (`ReconcileKind`: SKS proxy or serve).
- How many activators a revision needs to cover its instances' capacity plus the
  burst capacity (`computeNumActivators`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from amimesh.serving.kpa.scaling_settings import ScalingSettings

Active = Literal["activating", "active", "inactive"]
MIN_ACTIVATORS = 2


@dataclass(frozen=True)
class PodAutoscalerStatus:
    """`active` and `reason` as of `since`; whether the scale target has once reached
    its threshold; the scales last wanted and seen (None: never)."""

    active: Active = "activating"
    since: float = 0.0
    reason: str = ""
    scale_target_initialized: bool = False
    desired_scale: int | None = None
    actual_scale: int | None = None


def new_status(now: float) -> PodAutoscalerStatus:
    """A new revision's status: activating since `now`."""
    return PodAutoscalerStatus(active="activating", since=now)


def active_threshold(settings: ScalingSettings, status: PodAutoscalerStatus) -> int:
    """Ready instances needed to count as active."""
    if not status.scale_target_initialized:
        return max(settings.min_scale, settings.initial_scale)
    return max(settings.min_scale, 1)


def next_status(
    settings: ScalingSettings,
    status: PodAutoscalerStatus,
    *,
    want: int,
    ready: int,
    now: float,
    has_address: bool = True,
) -> PodAutoscalerStatus:
    """The status after a reconcile that wanted `want` (-1: unknown) and saw `ready`
    ready instances; `has_address` is whether the revision's service exists yet."""
    threshold = active_threshold(settings, status)
    initialized = status.scale_target_initialized or (ready >= threshold and has_address)
    desired = status.desired_scale
    # Right after a restart the decider has no data; keep the last known want.
    if not (want == -1 and desired is not None and desired >= 0):
        desired = want

    active, reason = status.active, status.reason
    if want == 0 or threshold == 0:
        active = "inactive"
        reason = "TimedOut" if status.active == "activating" and threshold > 0 else "NoTraffic"
    elif ready < threshold:
        if want > 0 or status.active != "inactive":
            active, reason = "activating", "Queued"
        else:
            active, reason = "inactive", "NoTraffic"
    elif want > 0 or status.active != "inactive":
        active, reason = "active", ""

    since = status.since
    if (active, reason) != (status.active, status.reason):
        since = now
    return replace(
        status,
        active=active,
        reason=reason,
        since=since,
        scale_target_initialized=initialized,
        desired_scale=desired,
        actual_scale=ready,
    )


def activator_in_path(want: int, excess_burst_capacity: int) -> bool:
    """Whether the revision's traffic goes through the activator."""
    return not (want > 0 and excess_burst_capacity >= 0)


def activator_count(settings: ScalingSettings, ready: int) -> int:
    """Activators needed to take the ready instances' capacity plus the burst."""
    tbc = settings.target_burst_capacity
    if tbc == 0:
        return MIN_ACTIVATORS
    capacity = ready * settings.total
    if tbc > 0:
        capacity += tbc
    return int(max(MIN_ACTIVATORS, math.ceil(capacity / settings.activator_capacity)))
