"""The Knative Pod Autoscaler's decision, pure: values in, values out, time handed in.

    autoscaler_config   config-autoscaler: keys, defaults, checks
    scaling_settings    a revision's annotations over config-autoscaler, resolved:
                        ScalingSettings (the annotations are read and checked by
                        resources.knative_autoscaling)
    buckets             the stable and panic metric windows (linear or weighted)
    max_window          the largest value over a time window (scale-down delay)
    decider             desired scale, panic mode, excess burst capacity
    autoscaler          windows and decider together: record samples, ask for a decision
    scaler              the reconciler's final scale: bounds, initial scale, scale to zero
    status              the revision's Active state, the activator's place, activators

One tick, as the I/O shell is to run it (`decider`, `scaler` and `status` the modules):

    decision = an_autoscaler.scale(now, ready)    # None: no data, keep the last one
    if decision: desired, ebc = decision.desired, decision.excess_burst_capacity
    # (before any decision: -1 and decider.initial_excess_burst_capacity(settings))
    step = scaler.scale(settings, pa_status, desired, current=instances, now=now,
                        path=activator_path)
    if step.apply: set the revision's instance count to step.scale
    through_activator = status.activator_in_path(step.scale, ebc)
    pa_status = status.next_status(settings, pa_status, want=step.scale, ready=ready, now=now)
"""
