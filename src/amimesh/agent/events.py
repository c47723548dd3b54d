"""What an instance's agent reports to its runner (one dict per event, in order):

    {"event": "envoy-started", "pid": 123}    Envoy's process started (recorded at once:
                                              a node agent killed now leaves no stranger)
    {"event": "envoy-ready", "pid": 123}      Envoy is LIVE (its pid, for clean-up)
    {"event": "started", "pid": 124}          the app process started (its pid)
    {"event": "ready"}                        the readiness probe passes: send traffic
    {"event": "not-ready", "reason": "..."}   stop sending traffic; reason: "probe failed",
                                              "stopping", "exited" or "envoy exited"
    {"event": "exited", "code": 0}            the app exited (code < 0: killed by signal -code)
    {"event": "envoy-exited", "code": 1}      Envoy died under a running app
    {"event": "failed", "reason": "..."}      the instance could not start (Envoy never
                                              became ready, the command cannot run)
    {"event": "stopped", "code": 0}           last: app and Envoy are gone; the agent's
                                              run ends with `code`
    {"event": "probe", "problem": "..."}      the readiness probe's failure changed ("" once
                                              it passes): why the instance is not ready
    {"event": "liveness", "problem": "..."}   the liveness probe failed its threshold: the
                                              app is being stopped (`exited` follows)

Every event may carry more keys later; readers ignore keys and events they do not know.
Events about readiness come in order: `ready` and `not-ready` alternate, starting with
`ready`, and `exited` is always preceded by `not-ready` if `ready` was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# A reason's length is bounded (its end is kept: a log's tail), so lines stay short.
MAX_REASON = 4000

# Reasons of `not-ready`.
STOPPING = "stopping"
EXITED = "exited"
PROBE_FAILED = "probe failed"
ENVOY_EXITED = "envoy exited"


def envoy_started(pid: int) -> dict[str, Any]:
    return {"event": "envoy-started", "pid": pid}


def envoy_ready(pid: int) -> dict[str, Any]:
    return {"event": "envoy-ready", "pid": pid}


def started(pid: int) -> dict[str, Any]:
    return {"event": "started", "pid": pid}


def ready() -> dict[str, Any]:
    return {"event": "ready"}


def not_ready(reason: str) -> dict[str, Any]:
    return {"event": "not-ready", "reason": reason}


def exited(code: int) -> dict[str, Any]:
    return {"event": "exited", "code": code}


def envoy_exited(code: int) -> dict[str, Any]:
    return {"event": "envoy-exited", "code": code}


def failed(reason: str) -> dict[str, Any]:
    return {"event": "failed", "reason": reason[-MAX_REASON:]}


def stopped(code: int) -> dict[str, Any]:
    return {"event": "stopped", "code": code}


@dataclass(frozen=True)
class AgentEvent:
    """A report, read: `event` names it; the other fields are set when it has them."""

    event: str
    code: int | None = None
    pid: int | None = None
    reason: str = ""


def read(data: Mapping[str, Any]) -> AgentEvent | None:
    """The event `data` reports, or None for anything that is not one (ignored)."""
    if not isinstance(data.get("event"), str):
        return None
    code, pid = data.get("code"), data.get("pid")
    return AgentEvent(
        event=data["event"],
        code=code if isinstance(code, int) else None,
        pid=pid if isinstance(pid, int) else None,
        reason=str(data.get("reason", "")),
    )
