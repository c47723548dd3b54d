"""The agent's life cycle as a pure state machine: events in, actions out.

    starting-envoy ─EnvoyReady─▶ starting-app ─AppStarted─▶ running ─Terminate─▶ grace
          │                                        │  ▲ Probe(ok)                 │ GraceOver
          │ EnvoyFailed / Terminate                │  └ ready ⇄ not-ready         ▼
          ▼                         AppExited ─────┴──────────────────────▶ stopping-app
    stopping-envoy ◀──────────────────────────────────────────── AppExited ─────┘
          │ EnvoyStopped
          ▼
        done (Exit)

With `hold_app` the app starts only once Envoy is ready (Istio's
holdApplicationUntilProxyStarts); without, both start at once (Istio's default) and the
instance is ready once Envoy is LIVE and the app's probe passes. `adopt()` takes on an
instance whose Envoy and app already run (a node agent started again). On
Terminate a ready instance first reports not-ready and waits `grace_s`, so that
proxies drop its endpoint before the app stops. The shell (`agent.agent`) performs the
actions and feeds back what happened; every `Report` becomes one line of the event
protocol (see `agent.events`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from amimesh.agent import events as ev

# Exit codes of the agent when the app never ran (as a shell's: cannot run / not found).
EXIT_ENVOY_FAILED = 125
EXIT_APP_FAILED = 127

Phase = Literal[
    "starting-envoy", "starting-app", "running", "grace", "stopping-app", "stopping-envoy", "done"
]


# --- events (what happened) ------------------------------------------------------------


@dataclass(frozen=True)
class EnvoyReady:
    pid: int


@dataclass(frozen=True)
class EnvoyFailed:
    reason: str


@dataclass(frozen=True)
class EnvoyExited:
    code: int


@dataclass(frozen=True)
class EnvoyStopped:
    pass


@dataclass(frozen=True)
class AppStarted:
    pid: int


@dataclass(frozen=True)
class AppFailed:
    reason: str


@dataclass(frozen=True)
class AppExited:
    code: int  # negative: killed by that signal


@dataclass(frozen=True)
class Probe:
    ok: bool


@dataclass(frozen=True)
class Terminate:
    pass


@dataclass(frozen=True)
class GraceOver:
    pass


Event = (
    EnvoyReady
    | EnvoyFailed
    | EnvoyExited
    | EnvoyStopped
    | AppStarted
    | AppFailed
    | AppExited
    | Probe
    | Terminate
    | GraceOver
)


# --- actions (what to do) --------------------------------------------------------------


@dataclass(frozen=True)
class StartEnvoy:
    pass


@dataclass(frozen=True)
class StartApp:
    pass


@dataclass(frozen=True)
class StartProbing:
    pass


@dataclass(frozen=True)
class StopProbing:
    pass


@dataclass(frozen=True)
class Report:
    event: dict[str, Any]


@dataclass(frozen=True)
class Wait:
    """Sleep, then feed `GraceOver`."""

    seconds: float


@dataclass(frozen=True)
class StopApp:
    """SIGTERM the app's process group, SIGKILL after the stop timeout."""


@dataclass(frozen=True)
class StopEnvoy:
    """Drain Envoy's listeners first if `drain`, then stop it; feed `EnvoyStopped`."""

    drain: bool


@dataclass(frozen=True)
class Exit:
    code: int


Action = (
    StartEnvoy | StartApp | StartProbing | StopProbing | Report | Wait | StopApp | StopEnvoy | Exit
)


def exit_code(app_code: int) -> int:
    """A process exit status for an app's return code (signal N → 128 + N, as shells)."""
    return 128 - app_code if app_code < 0 else app_code & 0xFF


class Machine:
    """One instance's agent. `has_app` False: Envoy alone (a gateway), ready when it is;
    `has_probe` False: the app is ready once started."""

    def __init__(
        self,
        *,
        has_app: bool,
        has_probe: bool,
        grace_s: float,
        failure_threshold: int = 3,
        hold_app: bool = True,
    ) -> None:
        self.has_app = has_app
        self.hold_app = hold_app or not has_app
        self.has_probe = has_probe
        self.grace_s = grace_s
        self.failure_threshold = failure_threshold
        self.phase: Phase = "starting-envoy"
        self.ready = False
        self.failures = 0
        self.code = 0  # the agent's exit code once done
        self._terminating = False
        self._envoy_gone = False
        self._envoy_failed = False
        self._app_pending = False  # StartApp sent, neither AppStarted nor AppFailed yet
        self._app_up = False

    def start(self) -> list[Action]:
        if self.hold_app:
            return [StartEnvoy()]
        self._app_pending = True
        # The app first: it takes longest to answer, and Envoy starts right beside it.
        return [StartApp(), StartEnvoy()]

    def adopt(self, *, was_ready: bool = False) -> list[Action]:
        """Take on a running Envoy and app (or a gateway's Envoy): probe them again. One
        that was ready stays ready meanwhile (as a kubelet started again keeps a running
        container's readiness): its endpoints stay where they were until probes fail."""
        self.phase = "running"
        self._app_up = self.has_app
        if not self.has_app or not self.has_probe:
            return self._become_ready()
        if was_ready:
            return [*self._become_ready(), StartProbing()]
        return [StartProbing()]

    def handle(self, event: Event) -> list[Action]:
        handler = getattr(self, f"_in_{self.phase.replace('-', '_')}")
        out: list[Action] = handler(event)
        return out

    # --- phases ------------------------------------------------------------------------

    def _in_starting_envoy(self, e: Event) -> list[Action]:
        if isinstance(e, EnvoyReady):
            out: list[Action] = [Report(ev.envoy_ready(e.pid))]
            if not self.has_app:
                self.phase = "running"
                return out + self._become_ready()
            self.phase = "starting-app"
            if self._app_up:  # started beside Envoy, before it was ready
                self.phase = "running"
                return out + self._app_running()
            if self._app_pending:
                return out
            self._app_pending = True
            return [*out, StartApp()]
        if isinstance(e, (EnvoyFailed, EnvoyExited)):
            reason = e.reason if isinstance(e, EnvoyFailed) else f"envoy exited ({e.code})"
            self.code = EXIT_ENVOY_FAILED
            out = [Report(ev.failed(reason))]
            if self._app_up or self._app_pending:  # the app started beside it goes too
                self._envoy_failed = self._envoy_gone = True
                self.phase = "stopping-app" if self._app_up else "starting-app"
                return [*out, StopApp()] if self._app_up else out
            return out + self._stop_envoy(drain=False)
        if isinstance(e, AppStarted):
            self._app_pending, self._app_up = False, True
            if self._terminating:
                self.phase = "stopping-app"
                return [Report(ev.started(e.pid)), StopApp()]
            return [Report(ev.started(e.pid))]
        if isinstance(e, AppFailed):
            self._app_pending = False
            self.code = EXIT_APP_FAILED
            return [Report(ev.failed(e.reason)), *self._stop_envoy(drain=False)]
        if isinstance(e, AppExited):
            self._app_up = False
            return self._app_exited(e.code)
        if isinstance(e, Terminate):
            self._terminating = True
            if self._app_up:
                self.phase = "stopping-app"
                return [StopApp()]
            if self._app_pending:  # stop it as soon as it has started
                self.phase = "starting-app"
                return []
            # Stopping Envoy abandons its start: nothing else has begun.
            return self._stop_envoy(drain=False)
        return []

    def _in_starting_app(self, e: Event) -> list[Action]:
        if isinstance(e, AppStarted):
            self._app_pending, self._app_up = False, True
            self.phase = "running"
            out: list[Action] = [Report(ev.started(e.pid))]
            if self._terminating or self._envoy_gone:
                self.phase = "stopping-app"
                return [*out, StopApp()]
            return out + self._app_running()
        if isinstance(e, AppFailed):
            self._app_pending = False
            self.code = EXIT_APP_FAILED
            return [Report(ev.failed(e.reason)), *self._stop_envoy(drain=False)]
        if isinstance(e, Terminate):
            self._terminating = True
        if isinstance(e, EnvoyExited):
            # The app is being started: stop it as soon as it has.
            self._envoy_gone = True
            return [Report(ev.envoy_exited(e.code))]
        return []

    def _in_running(self, e: Event) -> list[Action]:
        if isinstance(e, Probe):
            return self._probe(e.ok)
        if isinstance(e, Terminate):
            self._terminating = True
            out: list[Action] = [StopProbing()]
            if self.ready:
                self.ready = False
                out.append(Report(ev.not_ready(ev.STOPPING)))
                self.phase = "grace"
                return [*out, Wait(self.grace_s)]
            return out + self._after_grace()
        if isinstance(e, AppExited):
            return [StopProbing(), *self._app_exited(e.code)]
        if isinstance(e, EnvoyExited):
            out = [StopProbing(), Report(ev.envoy_exited(e.code))]
            if self.ready:
                self.ready = False
                out.append(Report(ev.not_ready(ev.ENVOY_EXITED)))
            if not self.has_app:
                self.code = EXIT_ENVOY_FAILED
                return out + self._stop_envoy(drain=False)
            self.phase = "stopping-app"
            return [*out, StopApp()]
        return []

    def _in_grace(self, e: Event) -> list[Action]:
        if isinstance(e, GraceOver):
            return self._after_grace()
        if isinstance(e, AppExited):
            return self._app_exited(e.code)
        return []

    def _in_stopping_app(self, e: Event) -> list[Action]:
        if isinstance(e, AppExited):
            return self._app_exited(e.code)
        return []

    def _in_stopping_envoy(self, e: Event) -> list[Action]:
        if isinstance(e, EnvoyStopped):
            self.phase = "done"
            return [Report(ev.stopped(self.code)), Exit(self.code)]
        return []

    def _in_done(self, e: Event) -> list[Action]:
        return []

    # --- steps -------------------------------------------------------------------------

    def _app_running(self) -> list[Action]:
        """Envoy is ready and the app has started: probe it, or it is ready now."""
        if not self.has_probe:
            return self._become_ready()
        return [StartProbing()]

    def _become_ready(self) -> list[Action]:
        self.ready = True
        self.failures = 0
        return [Report(ev.ready())]

    def _probe(self, ok: bool) -> list[Action]:
        if ok:
            self.failures = 0
            return [] if self.ready else self._become_ready()
        self.failures += 1
        if self.ready and self.failures >= self.failure_threshold:
            self.ready = False
            return [Report(ev.not_ready(ev.PROBE_FAILED))]
        return []

    def _after_grace(self) -> list[Action]:
        if self.has_app:
            self.phase = "stopping-app"
            return [StopApp()]
        return self._stop_envoy(drain=True)

    def _app_exited(self, code: int) -> list[Action]:
        out: list[Action] = []
        if self.ready:
            self.ready = False
            out.append(Report(ev.not_ready(ev.EXITED)))
        out.append(Report(ev.exited(code)))
        if not self._envoy_failed:
            self.code = 0 if self._terminating else exit_code(code)
        return out + self._stop_envoy(drain=True)

    def _stop_envoy(self, *, drain: bool) -> list[Action]:
        self.phase = "stopping-envoy"
        return [StopEnvoy(drain=drain)]
