"""From the decider's desire to the scale a revision gets (pure; time is handed in).

Follows knative/serving `pkg/reconciler/autoscaling/kpa/scaler.go` (`scale` and
`handleScaleToZero`):

- An unknown desire (-1, no metrics yet) changes nothing unless the revision is
  activating.
- The desire is held within [min-scale, max-scale] (max 0: unbounded; min-scale
  counts only while the revision is reachable). Until the revision has once reached
  its initial scale, that is a floor too (when above 1 and reachable).
- Scaling to zero needs `enable-scale-to-zero` (otherwise 1), and then depends on the
  revision's `Active` state (see `status`):
  - activating: zero only once activation has failed for longer than the progress
    deadline plus 30 s; until then nothing changes, and the revision is looked at
    again after that timeout;
  - active: it first stays at 1 for the rest of a stable window since it became
    active, then becomes inactive (scale reported 0, nothing applied yet);
  - inactive: zero once the activator is in the path and the revision has been
    inactive for max(scale-to-zero-grace-period, last pod retention); or, past the
    retention, once the activator has been its endpoint for the grace period. With a
    target burst capacity of -1 the activator is known to be in the path; otherwise
    the caller probes (`ActivatorPath.reached`), and an unreached activator asks for
    an asynchronous probe.
"""

from __future__ import annotations

from dataclasses import dataclass

from amimesh.serving.kpa.scaling_settings import ScalingSettings
from amimesh.serving.kpa.status import PodAutoscalerStatus

SCALE_UNKNOWN = -1
# Activation is given up this long after the progress deadline, so that the
# revision's own failure is reported first.
ACTIVATION_TIMEOUT_BUFFER_S = 30.0
# An active revision whose traffic already goes through the activator is looked at
# again after this long.
PROXY_RECHECK_S = 3.0


@dataclass(frozen=True)
class ActivatorPath:
    """Where the revision's traffic goes. `proxy_mode`: it is set to go through the
    activator. `since`: when the activator became its endpoint (None: it is not).
    `reached`: a probe through the revision's address answers from the activator."""

    proxy_mode: bool = False
    since: float | None = None
    reached: bool = True


@dataclass(frozen=True)
class ScaleStep:
    """What to do now. `scale` is the revision's wanted scale (-1: unknown); when
    `apply`, set its instance count to `scale`. `requeue_after_s`: decide again after
    that long. `probe_activator`: start probing whether the activator is in the path,
    and decide again when it answers."""

    scale: int
    apply: bool
    requeue_after_s: float | None = None
    probe_activator: bool = False


def scale(
    settings: ScalingSettings,
    status: PodAutoscalerStatus,
    desired: int,
    *,
    current: int,
    now: float,
    path: ActivatorPath,
) -> ScaleStep:
    """The step for a revision with `current` instances wanted so far, given the
    decider's `desired` (-1: unknown) at `now`."""
    if desired < 0 and status.active != "activating":
        return ScaleStep(desired, apply=False)
    low, high = settings.min_scale, settings.max_scale
    if settings.initial_scale > 1 and not status.scale_target_initialized and settings.reachable:
        low = max(settings.initial_scale, low)
    desired = apply_bounds(low, high, desired)
    step = _scale_to_zero(settings, status, desired, now=now, path=path)
    if step.apply and step.scale == current:
        return ScaleStep(step.scale, False, step.requeue_after_s, step.probe_activator)
    return step


def apply_bounds(low: int, high: int, value: int) -> int:
    """`value` within [low, high]; a `high` of 0 is no bound."""
    if value < low:
        return low
    if high != 0 and value > high:
        return high
    return value


def activation_timeout_s(settings: ScalingSettings) -> float:
    return settings.progress_deadline_s + ACTIVATION_TIMEOUT_BUFFER_S


def _scale_to_zero(
    settings: ScalingSettings,
    status: PodAutoscalerStatus,
    desired: int,
    *,
    now: float,
    path: ActivatorPath,
) -> ScaleStep:
    if desired != 0:
        return ScaleStep(desired, apply=True)
    if not settings.enable_scale_to_zero:
        return ScaleStep(1, apply=True)

    if status.active == "activating":
        timeout = activation_timeout_s(settings)
        if now - status.since > timeout:
            return ScaleStep(desired, apply=True)
        return ScaleStep(SCALE_UNKNOWN, apply=False, requeue_after_s=timeout)

    if status.active == "active":
        active_for = now - status.since
        if active_for >= settings.stable_window_s:
            # Reported as 0 so the revision turns inactive; the activator must be in
            # the path (and for long enough) before the last instance goes.
            requeue = PROXY_RECHECK_S if path.proxy_mode else None
            return ScaleStep(desired, apply=False, requeue_after_s=requeue)
        return ScaleStep(1, apply=True, requeue_after_s=settings.stable_window_s - active_for)

    reached = True if settings.activator_always_in_path else path.reached
    if not reached:
        return ScaleStep(desired, apply=False, probe_activator=True)
    retention = settings.scale_to_zero_pod_retention_s
    inactive_for = now - status.since
    if inactive_for >= max(settings.scale_to_zero_grace_period_s, retention):
        return ScaleStep(desired, apply=True)
    if retention > 0 and inactive_for < retention:
        return ScaleStep(desired, apply=False, requeue_after_s=retention - inactive_for)
    proxied_for = now - path.since if path.since is not None else 0.0
    wait = settings.scale_to_zero_grace_period_s - proxied_for
    if wait <= 0:
        return ScaleStep(desired, apply=True)
    return ScaleStep(desired, apply=False, requeue_after_s=wait)
