"""A PipelineRun's decisions: which tasks start, which are skipped and why, when
`finally` runs, retries, timeouts and cancellation, and the run's Succeeded
condition, as Tekton's reconciler makes them (`pkg/reconciler/pipelinerun/
resources/pipelinerunresolution.go`, `pipelinerunstate.go`). Pure: the caller runs
the tasks and hands in what happened and the time.

    run = PipelineRunState("build-1", spec, params, context, started=now)
    for launch in run.schedule(now):          # start these (params resolved)
        ...
    run.task_started("lint", now)
    retry = run.task_finished("lint", outcome, results, now)
    run.condition(now), run.done, run.skipped_tasks(), run.results()
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from amimesh.pipelines.values import Value, Values
from amimesh.pipelines.when import CelError, evaluate
from amimesh.resources import goparse
from amimesh.resources import tekton as tk
from amimesh.resources import tekton_refs as refs
from amimesh.resources.checks_tekton import node_of, reference_strings

DEFAULT_TIMEOUT_S = 3600.0  # Tekton's default-timeout-minutes: 60

# The Succeeded condition's reasons (tekton.dev/v1 PipelineRun).
STARTED = "Started"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
COMPLETED = "Completed"
FAILED = "Failed"
CANCELLED = "Cancelled"
TIMED_OUT = "PipelineRunTimeout"
STOPPING = "PipelineRunStopping"
CANCELLED_RUNNING_FINALLY = "CancelledRunningFinally"
STOPPED_RUNNING_FINALLY = "StoppedRunningFinally"
TIMED_OUT_RUNNING_FINALLY = "PipelineRunTimeoutRunningFinally"
INVALID_RESULT_REFERENCE = "InvalidTaskResultReference"
CEL_EVALUATION_FAILED = "CELEvaluationFailed"


class Skip(StrEnum):
    """Why a pipeline task did not run, in Tekton's words (`skippedTasks[].reason`)."""

    WHEN = "When Expressions evaluated to false"
    PARENT = "Parent Tasks were skipped"
    STOPPING = "PipelineRun was stopping"
    GRACEFULLY_CANCELLED = "PipelineRun was gracefully cancelled"
    GRACEFULLY_STOPPED = "PipelineRun was gracefully stopped"
    MISSING_RESULTS = "Results were missing"
    PIPELINE_TIMEOUT = "PipelineRun timeout has been reached"
    TASKS_TIMEOUT = "PipelineRun Tasks timeout has been reached"
    FINALLY_TIMEOUT = "PipelineRun Finally timeout has been reached"
    EMPTY_MATRIX = "Matrix Parameters have an empty array"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed or timed out
    CANCELLED = "cancelled"


@dataclass
class TaskState:
    task: tk.PipelineTask
    final: bool
    started: float | None = None
    outcome: Outcome | None = None
    skip: Skip | None = None
    attempts: int = 0
    results: dict[str, Value] = field(default_factory=dict)
    when_false: list[tk.WhenExpression] = field(default_factory=list)
    matrix_length: int | None = None  # how many TaskRuns a matrix fanned it out to

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def running(self) -> bool:
        return self.started is not None and self.outcome is None

    @property
    def done(self) -> bool:
        return self.outcome is not None or self.skip is not None

    @property
    def ignored_failure(self) -> bool:
        return self.outcome is Outcome.FAILED and self.task.onError == "continue"


@dataclass(frozen=True)
class Launch:
    """A pipeline task to start now: its params with every variable put in."""

    name: str
    task: tk.PipelineTask
    params: dict[str, Value]
    final: bool
    values: Values  # what an embedded taskSpec may also use (propagated params)
    timeout_s: float | None
    # With a matrix: each combination's params (on top of `params`), a TaskRun each.
    combinations: tuple[dict[str, Value], ...] | None = None


@dataclass(frozen=True)
class Timeouts:
    pipeline_s: float | None  # None: no timeout
    tasks_s: float | None
    finally_s: float | None

    @staticmethod
    def of(spec: tk.PipelineRunSpec) -> Timeouts:
        t = spec.timeouts or tk.Timeouts()
        pipeline = t.pipeline or spec.timeout
        return Timeouts(
            _seconds(pipeline, DEFAULT_TIMEOUT_S),
            _seconds(t.tasks, None),
            _seconds(t.finally_, None),
        )


def _seconds(duration: str | None, default: float | None) -> float | None:
    if duration is None:
        return default
    s = goparse.parse_duration(duration) / goparse.SECOND
    return s or None


def go_duration(seconds: float) -> str:
    return goparse.format_duration(round(seconds * goparse.SECOND))


class PipelineRunState:
    def __init__(
        self,
        name: str,
        spec: tk.PipelineSpec,
        values: Values,
        started: float,
        timeouts: Timeouts,
    ) -> None:
        self.name = name
        self.spec = spec
        self.values = values  # params, context, workspaces.W.bound
        self.started = started
        self.timeouts = timeouts
        self.tasks = {t.name: TaskState(t, False) for t in spec.tasks}
        self.tasks.update({t.name: TaskState(t, True) for t in spec.finally_})
        self.deps = {t.name: node_of(t).deps for t in spec.tasks}
        self.cancel_mode: str | None = None  # Cancelled, CancelledRunFinally, StoppedRunFinally
        self.timed_out: str | None = None  # "pipeline" or "tasks"
        self.finally_started: float | None = None
        self.failure: tuple[str, str] | None = None  # (reason, message) ending the run

    # ---- what happened ----------------------------------------------------------

    def task_started(self, name: str, now: float) -> None:
        state = self.tasks[name]
        state.started = now
        state.attempts += 1

    def task_finished(
        self, name: str, outcome: Outcome, results: Mapping[str, Value], now: float
    ) -> None:
        """Record a pipeline task's end (after its retries: the TaskRun retries itself)."""
        state = self.tasks[name]
        state.outcome = outcome
        state.results = dict(results)

    def cancel(self, mode: str) -> None:
        """spec.status: Cancelled (stop everything), CancelledRunFinally (cancel the
        tasks, then run finally) or StoppedRunFinally (let running tasks end, then
        finally)."""
        if self.cancel_mode is None:
            self.cancel_mode = mode

    def expire(self, now: float) -> str | None:
        """ "pipeline" or "tasks" when that timeout has just been reached, else None."""
        if self.timed_out == "pipeline":
            return None
        elapsed = now - self.started
        t = self.timeouts
        if t.pipeline_s is not None and elapsed >= t.pipeline_s:
            self.timed_out = "pipeline"
            return "pipeline"
        if self.timed_out is None and t.tasks_s is not None and elapsed >= t.tasks_s:
            if not self._dag_done():
                self.timed_out = "tasks"
                return "tasks"
        return None

    def next_deadline(self) -> float | None:
        """The next time `expire` may say something."""
        t = self.timeouts
        deadlines = []
        if t.pipeline_s is not None:
            deadlines.append(self.started + t.pipeline_s)
        if t.tasks_s is not None and self.timed_out is None:
            deadlines.append(self.started + t.tasks_s)
        return min(deadlines) if deadlines else None

    # ---- what to do ---------------------------------------------------------------

    def to_cancel(self) -> list[str]:
        """Running tasks to stop now, given cancellation and timeouts."""
        names = []
        for s in self.tasks.values():
            if not s.running:
                continue
            if self.cancel_mode == CANCELLED or self.timed_out == "pipeline":
                names.append(s.name)
            elif not s.final and (
                self.cancel_mode == "CancelledRunFinally" or self.timed_out == "tasks"
            ):
                names.append(s.name)
        return names

    def schedule(self, now: float) -> list[Launch]:
        """Mark what is skipped and return what starts now."""
        if self.cancel_mode == CANCELLED or self.failure is not None:
            return []
        launches: list[Launch] = []
        chosen: set[str] = set()
        changed = True
        while changed:  # a skip can free or skip more tasks: go on until nothing moves
            changed = False
            for s in self.tasks.values():
                if s.started is not None or s.done or s.final or s.name in chosen:
                    continue
                skip = self._dag_skip(s)
                if skip is not None:
                    s.skip = skip
                    changed = True
                elif all(self.tasks[d].done for d in self.deps[s.name]):
                    launches.append(self._launch(s, now))
                    chosen.add(s.name)
            if self.failure is not None:
                return []
        if self._dag_done() and self.finally_started is None and self.spec.finally_:
            self.finally_started = now
        if self.finally_started is not None:
            for s in self.tasks.values():
                if not s.final or s.started is not None or s.done:
                    continue
                skip = self._finally_skip(s, now)
                if skip is not None:
                    s.skip = skip
                    continue
                launches.append(self._launch(s, now))
        return launches

    def _dag_skip(self, s: TaskState) -> Skip | None:
        if self._stopping():
            return Skip.STOPPING
        if self.cancel_mode == "CancelledRunFinally":
            return Skip.GRACEFULLY_CANCELLED
        if self.cancel_mode == "StoppedRunFinally":
            return Skip.GRACEFULLY_STOPPED
        for d in self.deps[s.name]:
            parent = self.tasks[d].skip
            if parent is not None and parent is not Skip.WHEN:
                return Skip.PARENT
        if not all(self.tasks[d].done for d in self.deps[s.name]):
            return None
        if self._missing_results(s):
            return Skip.MISSING_RESULTS
        if not self._when_true(s):
            return Skip.WHEN
        if self.timed_out == "pipeline":
            return Skip.PIPELINE_TIMEOUT
        if self.timed_out == "tasks":
            return Skip.TASKS_TIMEOUT
        if self._empty_matrix(s):
            return Skip.EMPTY_MATRIX
        return None

    def _finally_skip(self, s: TaskState, now: float) -> Skip | None:
        if self._missing_results(s):
            return Skip.MISSING_RESULTS
        if not self._when_true(s):
            return Skip.WHEN
        if self.timed_out == "pipeline":
            return Skip.PIPELINE_TIMEOUT
        f = self.timeouts.finally_s
        if f is not None and self.finally_started is not None and now - self.finally_started > f:
            return Skip.FINALLY_TIMEOUT
        if self._empty_matrix(s):
            return Skip.EMPTY_MATRIX
        return None

    def _stopping(self) -> bool:
        return any(
            not s.final
            and (
                s.outcome is Outcome.CANCELLED
                or (s.outcome is Outcome.FAILED and not s.ignored_failure)
            )
            for s in self.tasks.values()
        )

    def _dag_done(self) -> bool:
        return all(s.done for s in self.tasks.values() if not s.final)

    def _strings(self, s: TaskState) -> list[str]:
        return list(reference_strings(s.task))

    def _empty_matrix(self, s: TaskState) -> bool:
        if s.task.matrix is None:
            return False
        values = self._task_values()
        return any(values.param_value(p.value) == [] for p in s.task.matrix.params)

    def combinations(self, task: tk.PipelineTask, values: Values) -> tuple[dict[str, Value], ...]:
        """A matrix's combinations, as Tekton's `Matrix.FanOut` makes them: the product
        of its params' items (the first param varying fastest); each `include` then
        goes into every combination it does not contradict, and is a combination of its
        own when no combination shares any of its values."""
        assert task.matrix is not None
        includes = [
            {p.name: values.param_value(p.value) for p in inc.params} for inc in task.matrix.include
        ]
        if includes and not task.matrix.params:
            return tuple(includes)
        combos: list[dict[str, Value]] = []
        for p in task.matrix.params:
            items = values.param_value(p.value)
            items = items if isinstance(items, list) else [str(items)]
            if not combos:
                combos = [{p.name: item} for item in items]
            else:
                combos = [{**c, p.name: item} for item in items for c in combos]
        for c in combos:
            for inc in includes:
                if all(c[k] == v for k, v in inc.items() if k in c):
                    c.update(inc)
        for inc in includes:
            if inc and not any(c.get(k) == v for c in combos for k, v in inc.items()):
                combos.append(inc)
        return tuple(combos)

    def _missing_results(self, s: TaskState) -> bool:
        for task, result in refs.result_refs(self._strings(s)):
            parent = self.tasks.get(task)
            if parent is None or parent.outcome is not Outcome.SUCCEEDED:
                return True
            if result not in parent.results:
                if not s.final and parent.skip is None:
                    self.failure = (
                        INVALID_RESULT_REFERENCE,
                        f"Invalid task result reference: Could not find result with name "
                        f"{result} for task {task}",
                    )
                return True
        return False

    def _task_values(self) -> Values:
        values = self.values.copy()
        for s in self.tasks.values():
            for k, v in s.results.items():
                values.set(f"{'finally' if s.final else 'tasks'}.{s.name}.results.{k}", v)
                if s.matrix_length is not None and isinstance(v, list):
                    values.set(f"tasks.{s.name}.matrix.{k}.length", str(len(v)))
            if s.matrix_length is not None:
                values.set(f"tasks.{s.name}.matrix.length", str(s.matrix_length))
            if not s.final:
                values.set(f"tasks.{s.name}.status", self._status_word(s))
        values.set("tasks.status", self._aggregate_status())
        return values

    def _when_true(self, s: TaskState) -> bool:
        values = self._task_values()
        try:
            s.when_false = [w for w in s.task.when if not evaluate(w, values)]
        except CelError as err:
            self.failure = (CEL_EVALUATION_FAILED, f"Error evaluating CEL {self.name}: {err}")
            return False
        return not s.when_false

    @staticmethod
    def _status_word(s: TaskState) -> str:
        if s.outcome is Outcome.SUCCEEDED:
            return "Succeeded"
        if s.outcome in (Outcome.FAILED, Outcome.CANCELLED):
            return "Failed"
        return "None"

    def _aggregate_status(self) -> str:
        dag = [s for s in self.tasks.values() if not s.final]
        if any(
            s.outcome in (Outcome.FAILED, Outcome.CANCELLED) and not s.ignored_failure for s in dag
        ):
            return "Failed"
        if any(s.skip is not None for s in dag):
            return "Completed"
        if all(s.outcome is Outcome.SUCCEEDED or s.ignored_failure for s in dag):
            return "Succeeded"
        return "None"

    def _launch(self, s: TaskState, now: float) -> Launch:
        values = self._task_values()
        values.set("context.pipelineTask.retries", str(s.task.retries))
        params = {p.name: values.param_value(p.value) for p in s.task.params}
        timeout = _seconds(s.task.timeout, DEFAULT_TIMEOUT_S)
        if s.final and self.timeouts.finally_s is not None and self.finally_started is not None:
            left = self.finally_started + self.timeouts.finally_s - now
            timeout = left if timeout is None else min(timeout, left)
        combos = self.combinations(s.task, values) if s.task.matrix is not None else None
        if combos is not None:
            s.matrix_length = len(combos)
        return Launch(s.name, s.task, params, s.final, values, timeout, combos)

    # ---- status -----------------------------------------------------------------

    @property
    def done(self) -> bool:
        if any(s.running for s in self.tasks.values()):
            return False
        if self.cancel_mode == CANCELLED or self.timed_out == "pipeline" or self.failure:
            return True
        return all(s.done for s in self.tasks.values())

    def counts(self) -> dict[str, int]:
        c = {
            "succeeded": 0,
            "failed": 0,
            "ignored": 0,
            "cancelled": 0,
            "skipped": 0,
            "incomplete": 0,
        }
        c["skipped_timeout"] = 0
        for s in self.tasks.values():
            if s.skip is not None:
                c["skipped"] += 1
                if s.skip in (Skip.PIPELINE_TIMEOUT, Skip.TASKS_TIMEOUT, Skip.FINALLY_TIMEOUT):
                    c["skipped_timeout"] += 1
            elif s.outcome is Outcome.SUCCEEDED:
                c["succeeded"] += 1
            elif s.ignored_failure:
                c["ignored"] += 1
            elif s.outcome is Outcome.FAILED:
                c["failed"] += 1
            elif s.outcome is Outcome.CANCELLED:
                c["cancelled"] += 1
            else:
                c["incomplete"] += 1
        return c

    def condition(self, now: float) -> tuple[str, str, str]:
        """(status, reason, message) of the Succeeded condition."""
        quoted = f'"{self.name}"'
        t = self.timeouts
        if self.timed_out == "pipeline" and t.pipeline_s is not None:
            return (
                "False",
                TIMED_OUT,
                f'PipelineRun {quoted} failed to finish within "{go_duration(t.pipeline_s)}"',
            )
        if self.cancel_mode == CANCELLED:
            return "False", CANCELLED, f"PipelineRun {quoted} was cancelled"
        if self.failure is not None:
            return "False", *self.failure
        c = self.counts()
        completed = c["succeeded"] + c["failed"] + c["cancelled"] + c["ignored"]
        failed = c["failed"] + c["ignored"]
        if self.done:
            if self.timed_out == "tasks" and t.tasks_s is not None:
                return (
                    "False",
                    TIMED_OUT,
                    f"PipelineRun {quoted} failed due to tasks failed to finish within "
                    f'"{go_duration(t.tasks_s)}"',
                )
            if c["ignored"]:
                message = (
                    f"Tasks Completed: {completed} (Failed: {failed} (Ignored: {c['ignored']}), "
                    f"Cancelled {c['cancelled']}), Skipped: {c['skipped']}"
                )
            else:
                message = (
                    f"Tasks Completed: {completed} (Failed: {failed}, Cancelled "
                    f"{c['cancelled']}), Skipped: {c['skipped']}"
                )
            if c["failed"] or c["skipped_timeout"]:
                return "False", FAILED, message
            if self.cancel_mode is not None:
                return "False", CANCELLED, f"PipelineRun {quoted} was cancelled"
            if c["cancelled"]:
                return "False", CANCELLED, message
            return "True", COMPLETED if c["skipped"] else SUCCEEDED, message
        reason = RUNNING if any(s.started is not None for s in self.tasks.values()) else STARTED
        if self.timed_out == "tasks":
            reason = TIMED_OUT_RUNNING_FINALLY
        elif self.cancel_mode == "CancelledRunFinally":
            reason = CANCELLED_RUNNING_FINALLY
        elif self.cancel_mode == "StoppedRunFinally":
            reason = STOPPED_RUNNING_FINALLY
        elif c["cancelled"] or (
            c["failed"] and self.finally_started is None and not self.spec.finally_
        ):
            reason = STOPPING
        message = (
            f"Tasks Completed: {completed} (Failed: {c['failed']}, Cancelled {c['cancelled']}), "
            f"Incomplete: {c['incomplete']}, Skipped: {c['skipped']}"
        )
        return "Unknown", reason, message

    def skipped_tasks(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for s in self.tasks.values():
            if s.skip is None:
                continue
            entry: dict[str, object] = {"name": s.name, "reason": s.skip.value}
            if s.skip is Skip.WHEN and s.task.when:
                entry["whenExpressions"] = [
                    w.model_dump(exclude_defaults=True) for w in s.task.when
                ]
            out.append(entry)
        return out

    def results(self) -> list[dict[str, object]]:
        """The pipeline's results whose task results are all there."""
        values = self._task_values()
        out: list[dict[str, object]] = []
        for r in self.spec.results:
            texts = list(refs.strings_in(r.value))
            used = [*refs.result_refs(texts), *_finally_refs(texts)]
            if any(self.tasks.get(t) is None or k not in self.tasks[t].results for t, k in used):
                continue
            out.append({"name": r.name, "value": values.param_value(r.value)})
        return out


def _finally_refs(texts: list[str]) -> list[tuple[str, str]]:
    """(task, result) of each `$(finally.T.results.R)`: pipeline results may use them."""
    out = []
    for text in texts:
        for v in refs.variables(text):
            if v.root == "finally" and len(v.parts) >= 3 and v.parts[1] == "results":
                out.append((v.parts[0], v.parts[2]))
    return out
