"""The agent's life cycle, event by event: no processes, no clock."""

from __future__ import annotations

from typing import Any

from amimesh.agent import events
from amimesh.agent import machine as m


def reports(actions: list[m.Action]) -> list[dict[str, Any]]:
    return [a.event for a in actions if isinstance(a, m.Report)]


def others(actions: list[m.Action]) -> list[m.Action]:
    return [a for a in actions if not isinstance(a, m.Report)]


def running(*, probe: bool = True, grace_s: float = 0.5, threshold: int = 3) -> m.Machine:
    """A machine whose Envoy is ready and whose app has started (not yet ready)."""
    mach = m.Machine(has_app=True, has_probe=probe, grace_s=grace_s, failure_threshold=threshold)
    assert mach.start() == [m.StartEnvoy()]
    out = mach.handle(m.EnvoyReady(pid=10))
    assert reports(out) == [events.envoy_ready(10)]
    assert others(out) == [m.StartApp()]
    mach.handle(m.AppStarted(pid=11))
    return mach


def test_app_starts_only_once_envoy_is_ready() -> None:
    mach = m.Machine(has_app=True, has_probe=True, grace_s=0.5)
    assert mach.start() == [m.StartEnvoy()]
    assert mach.handle(m.Probe(ok=True)) == []  # nothing runs yet
    assert others(mach.handle(m.EnvoyReady(pid=10))) == [m.StartApp()]
    out = mach.handle(m.AppStarted(pid=11))
    assert reports(out) == [events.started(11)]
    assert others(out) == [m.StartProbing()]
    assert not mach.ready


def test_probe_makes_ready_and_failure_threshold_makes_not_ready() -> None:
    mach = running(threshold=2)
    assert mach.handle(m.Probe(ok=False)) == []  # not ready yet: failures say nothing
    assert reports(mach.handle(m.Probe(ok=True))) == [events.ready()]
    assert mach.handle(m.Probe(ok=True)) == []
    assert mach.handle(m.Probe(ok=False)) == []  # 1 of 2
    assert mach.handle(m.Probe(ok=True)) == []  # success resets the count
    assert mach.handle(m.Probe(ok=False)) == []
    assert reports(mach.handle(m.Probe(ok=False))) == [events.not_ready(events.PROBE_FAILED)]
    assert reports(mach.handle(m.Probe(ok=True))) == [events.ready()]


def test_no_probe_is_ready_once_started() -> None:
    mach = m.Machine(has_app=True, has_probe=False, grace_s=0.5)
    mach.start()
    mach.handle(m.EnvoyReady(pid=10))
    out = mach.handle(m.AppStarted(pid=11))
    assert reports(out) == [events.started(11), events.ready()]
    assert others(out) == []


def test_terminate_reports_not_ready_waits_then_stops_app_then_drains_envoy() -> None:
    mach = running(grace_s=0.7)
    mach.handle(m.Probe(ok=True))
    out = mach.handle(m.Terminate())
    assert reports(out) == [events.not_ready(events.STOPPING)]
    assert others(out) == [m.StopProbing(), m.Wait(0.7)]
    assert mach.handle(m.Probe(ok=False)) == []  # a late probe changes nothing
    assert mach.handle(m.GraceOver()) == [m.StopApp()]
    out = mach.handle(m.AppExited(code=-15))
    assert reports(out) == [events.exited(-15)]
    assert others(out) == [m.StopEnvoy(drain=True)]
    out = mach.handle(m.EnvoyStopped())
    assert out == [m.Report(events.stopped(0)), m.Exit(0)]  # stopped as asked: success


def test_terminate_before_ready_skips_the_grace() -> None:
    mach = running()
    out = mach.handle(m.Terminate())
    assert reports(out) == []
    assert others(out) == [m.StopProbing(), m.StopApp()]


def test_app_exit_ends_the_sidecar_with_its_code() -> None:
    mach = running()
    mach.handle(m.Probe(ok=True))
    out = mach.handle(m.AppExited(code=3))
    assert reports(out) == [events.not_ready(events.EXITED), events.exited(3)]
    assert others(out) == [m.StopProbing(), m.StopEnvoy(drain=True)]
    assert mach.handle(m.EnvoyStopped())[-1] == m.Exit(3)


def test_job_exiting_zero_exits_zero_and_a_signal_maps_to_128_plus() -> None:
    job = running(probe=False)
    job.handle(m.AppExited(code=0))
    assert job.handle(m.EnvoyStopped())[-1] == m.Exit(0)
    killed = running()
    killed.handle(m.AppExited(code=-9))
    assert killed.handle(m.EnvoyStopped())[-1] == m.Exit(137)


def test_envoy_failing_to_start_fails_the_instance_without_starting_the_app() -> None:
    mach = m.Machine(has_app=True, has_probe=True, grace_s=0.5)
    mach.start()
    out = mach.handle(m.EnvoyFailed("bad bootstrap"))
    assert reports(out) == [events.failed("bad bootstrap")]
    assert others(out) == [m.StopEnvoy(drain=False)]
    assert mach.handle(m.EnvoyStopped())[-1] == m.Exit(m.EXIT_ENVOY_FAILED)


def test_app_that_cannot_run_fails_with_127() -> None:
    mach = m.Machine(has_app=True, has_probe=True, grace_s=0.5)
    mach.start()
    mach.handle(m.EnvoyReady(pid=10))
    out = mach.handle(m.AppFailed("no such file"))
    assert reports(out) == [events.failed("no such file")]
    assert mach.handle(m.EnvoyStopped())[-1] == m.Exit(127)


def test_terminate_while_envoy_starts_stops_it_at_once() -> None:
    mach = m.Machine(has_app=True, has_probe=True, grace_s=0.5)
    mach.start()
    assert mach.handle(m.Terminate()) == [m.StopEnvoy(drain=False)]
    assert mach.handle(m.EnvoyReady(pid=10)) == []  # too late: it is being stopped
    assert mach.handle(m.EnvoyStopped())[-1] == m.Exit(0)


def test_terminate_while_app_starts_stops_it_once_started() -> None:
    mach = m.Machine(has_app=True, has_probe=True, grace_s=0.5)
    mach.start()
    mach.handle(m.EnvoyReady(pid=10))
    assert mach.handle(m.Terminate()) == []
    out = mach.handle(m.AppStarted(pid=11))
    assert others(out) == [m.StopApp()]
    mach.handle(m.AppExited(code=-15))
    assert mach.handle(m.EnvoyStopped())[-1] == m.Exit(0)


def test_envoy_dying_under_the_app_stops_the_app() -> None:
    mach = running()
    mach.handle(m.Probe(ok=True))
    out = mach.handle(m.EnvoyExited(code=1))
    assert reports(out) == [events.envoy_exited(1), events.not_ready(events.ENVOY_EXITED)]
    assert others(out) == [m.StopProbing(), m.StopApp()]
    mach.handle(m.AppExited(code=-15))
    assert mach.handle(m.EnvoyStopped())[-1] == m.Exit(143)


def test_gateway_is_envoy_alone_ready_when_envoy_is() -> None:
    gw = m.Machine(has_app=False, has_probe=False, grace_s=0.2)
    gw.start()
    out = gw.handle(m.EnvoyReady(pid=10))
    assert reports(out) == [events.envoy_ready(10), events.ready()]
    out = gw.handle(m.Terminate())
    assert reports(out) == [events.not_ready(events.STOPPING)]
    assert m.Wait(0.2) in out
    assert gw.handle(m.GraceOver()) == [m.StopEnvoy(drain=True)]
    assert gw.handle(m.EnvoyStopped())[-1] == m.Exit(0)


def test_events_read_back_and_junk_is_ignored() -> None:
    for event in (
        events.envoy_ready(1),
        events.started(2),
        events.ready(),
        events.not_ready("probe failed"),
        events.exited(-9),
        events.failed("why"),
        events.stopped(0),
    ):
        parsed = events.read(event)
        assert parsed is not None and parsed.event == event["event"]
        assert parsed.code == event.get("code") and parsed.pid == event.get("pid")
        assert parsed.reason == event.get("reason", "")
    assert events.read({"no": "event"}) is None
    assert events.read({"event": 1}) is None
    assert events.read({"event": "future", "extra": 1}) == events.AgentEvent("future")


def test_without_hold_app_and_envoy_start_at_once() -> None:
    mach = m.Machine(has_app=True, has_probe=True, grace_s=0.5, hold_app=False)
    assert mach.start() == [m.StartApp(), m.StartEnvoy()]
    out = mach.handle(m.AppStarted(pid=11))
    assert reports(out) == [events.started(11)] and others(out) == []
    assert mach.handle(m.Probe(ok=True)) == []  # Envoy is not ready: nothing probes yet
    out = mach.handle(m.EnvoyReady(pid=10))
    assert reports(out) == [events.envoy_ready(10)] and others(out) == [m.StartProbing()]
    assert reports(mach.handle(m.Probe(ok=True))) == [events.ready()]


def test_without_hold_envoy_ready_first_waits_for_the_app() -> None:
    mach = m.Machine(has_app=True, has_probe=False, grace_s=0.5, hold_app=False)
    mach.start()
    assert others(mach.handle(m.EnvoyReady(pid=10))) == []  # StartApp is on its way
    out = mach.handle(m.AppStarted(pid=11))
    assert reports(out) == [events.started(11), events.ready()]


def test_without_hold_a_failing_envoy_stops_the_app_started_beside_it() -> None:
    mach = m.Machine(has_app=True, has_probe=True, grace_s=0.5, hold_app=False)
    mach.start()
    mach.handle(m.AppStarted(pid=11))
    out = mach.handle(m.EnvoyFailed("bad bootstrap"))
    assert reports(out) == [events.failed("bad bootstrap")] and others(out) == [m.StopApp()]
    out = mach.handle(m.AppExited(-15))
    assert others(out) == [m.StopEnvoy(drain=True)]
    out = mach.handle(m.EnvoyStopped())
    assert out[-1] == m.Exit(m.EXIT_ENVOY_FAILED)


def test_without_hold_terminate_before_the_app_started_stops_it_once_it_has() -> None:
    mach = m.Machine(has_app=True, has_probe=True, grace_s=0.5, hold_app=False)
    mach.start()
    assert mach.handle(m.Terminate()) == []
    out = mach.handle(m.AppStarted(pid=11))
    assert others(out) == [m.StopApp()]
    assert others(mach.handle(m.AppExited(-15))) == [m.StopEnvoy(drain=True)]
    assert mach.handle(m.EnvoyStopped())[-1] == m.Exit(0)


def test_adopted_instances_are_probed_again() -> None:
    mach = m.Machine(has_app=True, has_probe=True, grace_s=0.5)
    assert mach.adopt() == [m.StartProbing()]
    assert reports(mach.handle(m.Probe(ok=True))) == [events.ready()]
    gateway = m.Machine(has_app=False, has_probe=False, grace_s=0.0)
    assert reports(gateway.adopt()) == [events.ready()]


def test_an_adopted_instance_that_was_ready_stays_ready_until_its_probes_fail() -> None:
    mach = m.Machine(has_app=True, has_probe=True, grace_s=0.5, failure_threshold=2)
    out = mach.adopt(was_ready=True)
    assert reports(out) == [events.ready()] and m.StartProbing() in out
    assert mach.handle(m.Probe(ok=False)) == []
    assert reports(mach.handle(m.Probe(ok=False))) == [events.not_ready(events.PROBE_FAILED)]
