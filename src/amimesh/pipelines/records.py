"""A TaskRun's state as it runs, and its status in Tekton's shape. Pure: times are
handed in (seconds since the epoch) and written as Kubernetes writes them.

    run = TaskRunRecord("build", "default", task="build")
    run.start(now)
    run.steps[0].finish(0, now)
    run.finish("Succeeded", "All Steps have completed executing", now)
    run.status()     # {"conditions": [...], "startTime": ..., "steps": [...], ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from amimesh.pipelines.values import Value

# The Succeeded condition's reasons (tekton.dev/v1 TaskRun).
STARTED = "Started"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
CANCELLED = "TaskRunCancelled"
TIMED_OUT = "TaskRunTimeout"
VALIDATION_FAILED = "TaskRunValidationFailed"
RUNNING_MESSAGE = "Not all Steps in the Task have finished executing"
SUCCEEDED_MESSAGE = "All Steps have completed executing"
CANCELLED_BY_PIPELINE = "TaskRun cancelled as the PipelineRun it belongs to has been cancelled."
CANCELLED_BY_PIPELINE_TIMEOUT = "TaskRun cancelled as the PipelineRun it belongs to has timed out."

# Where a TaskRun runs on its node (its steps' logs are under `logs/`).
RUN_DIR_ANNOTATION = "ami.dev/run-dir"

# A step's termination reasons.
COMPLETED = "Completed"
ERROR = "Error"
CONTINUED = "Continued"
TIMEOUT_EXCEEDED = "TimeoutExceeded"
SKIPPED = "Skipped"
STEP_CANCELLED = "Cancelled"


def rfc3339(t: float | None) -> str | None:
    """A time as Kubernetes writes it: `2026-12-07T00:16:32Z`."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(status: str, reason: str, message: str, at: float | None) -> dict[str, Any]:
    return {
        "type": "Succeeded",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": rfc3339(at),
    }


@dataclass
class StepRecord:
    name: str
    container: str
    image: str
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    reason: str | None = None  # Completed, Error, Continued, TimeoutExceeded, ...
    message: str = ""

    def start(self, now: float) -> None:
        self.started = now

    def finish(self, exit_code: int, reason: str, now: float, message: str = "") -> None:
        self.exit_code, self.reason, self.finished, self.message = exit_code, reason, now, message
        if self.started is None:
            self.started = now

    @property
    def done(self) -> bool:
        return self.reason is not None

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "container": self.container, "image": self.image}
        if self.reason is not None:
            terminated: dict[str, Any] = {
                "exitCode": self.exit_code,
                "reason": ERROR if self.exit_code else COMPLETED,
                "startedAt": rfc3339(self.started),
                "finishedAt": rfc3339(self.finished),
            }
            if self.message:
                terminated["message"] = self.message
            out["terminated"] = terminated
            out["terminationReason"] = self.reason
        elif self.started is not None:
            out["running"] = {"startedAt": rfc3339(self.started)}
        else:
            out["waiting"] = {"reason": "PodInitializing"}
        return out


@dataclass
class TaskRunRecord:
    name: str
    namespace: str
    task: str = ""  # the Task's name (or the pipeline task's, for an embedded spec)
    pipeline_run: str = ""
    pipeline_task: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    run_dir: str = ""
    created: float | None = None
    started: float | None = None
    finished: float | None = None
    state: str = "Unknown"
    reason: str = STARTED
    message: str = ""
    transition: float | None = None
    steps: list[StepRecord] = field(default_factory=list)
    sidecars: list[StepRecord] = field(default_factory=list)
    results: dict[str, Value] = field(default_factory=dict)
    result_types: dict[str, str] = field(default_factory=dict)
    retries: list[dict[str, Any]] = field(default_factory=list)
    timeout_s: float | None = None

    def start(self, now: float) -> None:
        self.started = now
        self.state, self.reason, self.message = "Unknown", RUNNING, RUNNING_MESSAGE
        self.transition = now

    def finish(self, reason: str, message: str, now: float) -> None:
        self.state = "True" if reason == SUCCEEDED else "False"
        self.reason, self.message, self.finished, self.transition = reason, message, now, now
        if self.started is None:
            self.started = now

    @property
    def done(self) -> bool:
        return self.state != "Unknown"

    @property
    def succeeded(self) -> bool:
        return self.state == "True"

    def retry(self) -> None:
        """Keep this attempt's status in `retriesStatus` and start over."""
        self.retries.append(self._attempt_status())
        self.started = self.finished = None
        self.state, self.reason, self.message = "Unknown", STARTED, ""
        self.results = {}
        self.steps = [StepRecord(s.name, s.container, s.image) for s in self.steps]
        self.sidecars = [StepRecord(s.name, s.container, s.image) for s in self.sidecars]

    def _attempt_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "conditions": [condition(self.state, self.reason, self.message, self.transition)],
            "podName": "",
        }
        if self.started is not None:
            out["startTime"] = rfc3339(self.started)
        if self.finished is not None:
            out["completionTime"] = rfc3339(self.finished)
        out["steps"] = [s.status() for s in self.steps]
        if self.sidecars:
            out["sidecars"] = [s.status() for s in self.sidecars]
        if self.results:
            out["results"] = [
                {"name": k, "type": self.result_types.get(k, "string"), "value": v}
                for k, v in self.results.items()
            ]
        return out

    def status(self) -> dict[str, Any]:
        """The TaskRun's `status`, as Tekton writes it."""
        out = self._attempt_status()
        if self.retries:
            out["retriesStatus"] = list(self.retries)
        return out

    def object(self, api_version: str = "tekton.dev/v1") -> dict[str, Any]:
        """The whole TaskRun, as `kubectl get -o yaml` shows it (spec left out)."""
        labels = dict(self.labels)
        if self.pipeline_run:
            labels.setdefault("tekton.dev/pipelineRun", self.pipeline_run)
            labels.setdefault("tekton.dev/pipelineTask", self.pipeline_task)
        if self.task:
            labels.setdefault("tekton.dev/task", self.task)
        return {
            "apiVersion": api_version,
            "kind": "TaskRun",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": {RUN_DIR_ANNOTATION: self.run_dir} if self.run_dir else {},
                "creationTimestamp": rfc3339(self.created),
            },
            "status": self.status(),
        }


@dataclass
class PipelineRunRecord:
    """A PipelineRun's status as it runs; its TaskRuns are records of their own."""

    name: str
    namespace: str
    pipeline: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    created: float | None = None
    started: float | None = None
    finished: float | None = None
    finally_started: float | None = None
    state: str = "Unknown"
    reason: str = STARTED
    message: str = ""
    transition: float | None = None
    children: list[tuple[str, str]] = field(default_factory=list)  # (TaskRun, pipeline task)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state != "Unknown"

    def set_condition(self, state: str, reason: str, message: str, now: float) -> None:
        if (state, reason, message) != (self.state, self.reason, self.message):
            self.state, self.reason, self.message, self.transition = state, reason, message, now
        if state != "Unknown" and self.finished is None:
            self.finished = now

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "conditions": [condition(self.state, self.reason, self.message, self.transition)]
        }
        if self.started is not None:
            out["startTime"] = rfc3339(self.started)
        if self.finished is not None:
            out["completionTime"] = rfc3339(self.finished)
        if self.finally_started is not None:
            out["finallyStartTime"] = rfc3339(self.finally_started)
        if self.children:
            out["childReferences"] = [
                {"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": n, "pipelineTaskName": t}
                for n, t in self.children
            ]
        if self.skipped:
            out["skippedTasks"] = list(self.skipped)
        if self.results:
            out["results"] = list(self.results)
        if self.spec:
            out["pipelineSpec"] = self.spec
        return out

    def object(self, api_version: str = "tekton.dev/v1") -> dict[str, Any]:
        labels = dict(self.labels)
        if self.pipeline:
            labels.setdefault("tekton.dev/pipeline", self.pipeline)
        return {
            "apiVersion": api_version,
            "kind": "PipelineRun",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": labels,
                "creationTimestamp": rfc3339(self.created),
            },
            "status": self.status(),
        }
