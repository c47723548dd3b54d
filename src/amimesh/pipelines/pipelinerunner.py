"""Run TaskRuns and PipelineRuns on this host. I/O: the decisions are `scheduler`'s
and `taskplan`'s; this module makes directories, starts `runner.run_task` for each
TaskRun (as many at once as the graph allows) and hands back what happened.

    runs = Runs(root, lookups, on_change)
    record = runs.pipeline_run(resource)              # its status, at once
    await runs.run_pipeline(resource, record, control)
    control.cancel("Cancelled")                       # spec.status, from elsewhere

Directories, under `root`:

    pipelineruns/NS/NAME/workspaces/W   an emptyDir or volumeClaimTemplate workspace
    taskruns/NS/NAME/                   a TaskRun's own: workspace/, tekton/, home/, logs/
    pvc/NS/CLAIM/                       a persistentVolumeClaim workspace, kept across runs
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amimesh.pipelines import records as rec
from amimesh.pipelines import runner
from amimesh.pipelines import scheduler as sch
from amimesh.pipelines.taskplan import TaskPlan, plan_task
from amimesh.pipelines.values import ParamError, Value, Values, param_values, resolve_params
from amimesh.resources import tekton as tk
from amimesh.resources.kube import ConfigMap, Secret
from amimesh.resources.meta import Resource


@dataclass(frozen=True)
class Lookups:
    """What runs read from the mesh's config: Tasks and Pipelines by (namespace, name),
    and a ConfigMap's data."""

    task: Callable[[str, str], tk.TaskSpec | None]
    pipeline: Callable[[str, str], tk.PipelineSpec | None]
    config_map: Callable[[str, str], Mapping[str, str] | None]
    secret: Callable[[str, str], Mapping[str, bytes] | None] = lambda _ns, _name: None

    @staticmethod
    def of(resources: Iterable[Resource]) -> Lookups:
        """Lookups over a fixed set of resources (a load, a store's content)."""
        tasks: dict[tuple[str, str], tk.TaskSpec] = {}
        pipelines: dict[tuple[str, str], tk.PipelineSpec] = {}
        maps: dict[tuple[str, str], Mapping[str, str]] = {}
        secrets: dict[tuple[str, str], Mapping[str, bytes]] = {}
        for r in resources:
            if isinstance(r, tk.Task):
                tasks[(r.namespace, r.name)] = r.spec
            elif isinstance(r, tk.Pipeline):
                pipelines[(r.namespace, r.name)] = r.spec
            elif isinstance(r, ConfigMap):
                maps[(r.namespace, r.name)] = r.data
            elif isinstance(r, Secret):
                values = {k: r.value(k) for k in r.keys()}
                secrets[(r.namespace, r.name)] = {k: v for k, v in values.items() if v is not None}
        return Lookups(
            lambda ns, n: tasks.get((ns, n)),
            lambda ns, n: pipelines.get((ns, n)),
            lambda ns, n: maps.get((ns, n)),
            lambda ns, n: secrets.get((ns, n)),
        )


class PipelineControl:
    """Cancels a PipelineRun from outside (`spec.status`)."""

    def __init__(self) -> None:
        self.mode: str | None = None
        self.changed = asyncio.Event()

    def cancel(self, mode: str = sch.CANCELLED) -> None:
        if self.mode is None:
            self.mode = mode
            self.changed.set()


class RunFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def child_name(parent: str, task: str) -> str:
    """A pipeline task's TaskRun name: `PARENT-TASK`, shortened with a hash past 63."""
    name = f"{parent}-{task}"
    if len(name) <= 63:
        return name
    digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{name[:54]}-{digest}"


def _timeout_s(duration: str | None) -> float | None:
    return sch._seconds(duration, sch.DEFAULT_TIMEOUT_S)


class Runs:
    def __init__(
        self,
        root: Path,
        lookups: Lookups,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.root = root
        self.lookups = lookups
        self.on_change = on_change
        self.task_runs: dict[tuple[str, str], rec.TaskRunRecord] = {}
        self.task_controls: dict[tuple[str, str], runner.RunControl] = {}

    # ---- directories and workspaces ----------------------------------------------

    def pipeline_run_dir(self, namespace: str, name: str) -> Path:
        return self.root / "pipelineruns" / namespace / name

    def task_run_dir(self, namespace: str, name: str) -> Path:
        return self.root / "taskruns" / namespace / name

    def _bind(
        self, bindings: Sequence[tk.WorkspaceBinding], namespace: str, own_dir: Path
    ) -> dict[str, str]:
        """Each workspace binding's directory (made, and filled for a ConfigMap)."""
        out: dict[str, str] = {}
        for b in bindings:
            if b.persistentVolumeClaim is not None:
                base = self.root / "pvc" / namespace / b.persistentVolumeClaim.claimName
            else:
                base = own_dir / "workspaces" / b.name
            if b.configMap is not None:
                data = self.lookups.config_map(namespace, b.configMap.name)
                if data is None and not b.configMap.optional:
                    raise RunFailed(
                        "CreateContainerConfigError",
                        f'configmap "{b.configMap.name}" not found for workspace "{b.name}"',
                    )
                _fill(base, data or {}, {i.key: i.path for i in b.configMap.items})
            if b.secret is not None:
                values = self.lookups.secret(namespace, b.secret.secretName)
                if values is None and not b.secret.optional:
                    raise RunFailed(
                        "CreateContainerConfigError",
                        f'secret "{b.secret.secretName}" not found for workspace "{b.name}"',
                    )
                _fill_secret(base, values or {}, {i.key: i.path for i in b.secret.items})
            path = base / b.subPath if b.subPath else base
            path.mkdir(parents=True, exist_ok=True)
            out[b.name] = str(path)
        return out

    # ---- TaskRuns -----------------------------------------------------------------

    def task_run(self, run: tk.TaskRun, now: float) -> rec.TaskRunRecord:
        """The record of a TaskRun about to run (shown at once)."""
        task = run.spec.taskRef.name if run.spec.taskRef is not None else ""
        record = rec.TaskRunRecord(
            run.name,
            run.namespace,
            task=task,
            labels=dict(run.metadata.labels),
            run_dir=str(self.task_run_dir(run.namespace, run.name)),
            created=now,
        )
        self.task_runs[(run.namespace, run.name)] = record
        self.task_controls[(run.namespace, run.name)] = runner.RunControl()
        return record

    async def run_task_run(self, run: tk.TaskRun, record: rec.TaskRunRecord) -> None:
        control = self.task_controls[(run.namespace, run.name)]
        try:
            spec = self._task_spec(run.namespace, run.spec.taskRef, run.spec.taskSpec)
            params = resolve_params(
                spec.params, [(p.name, p.value) for p in run.spec.params], f"TaskRun {run.name}"
            )
            own = self.task_run_dir(run.namespace, run.name)
            bound = self._bind(run.spec.workspaces, run.namespace, own)
            _check_workspaces(spec, bound)
        except (RunFailed, ParamError) as err:
            reason = err.reason if isinstance(err, RunFailed) else rec.VALIDATION_FAILED
            record.finish(reason, err.message, time.time())
            self.on_change()
            return
        extra: dict[str, Value] = {}
        if run.spec.taskSpec is not None:  # an embedded spec sees the run's params
            declared = {p.name for p in spec.params}
            extra = {f"params.{p.name}": p.value for p in run.spec.params if p.name not in declared}
        timeout = _timeout_s(run.spec.timeout)
        await self._run(spec, params, record, bound, timeout, control, extra, run.spec.retries)

    def _task_spec(
        self, namespace: str, ref: tk.TaskRef | None, spec: tk.TaskSpec | None
    ) -> tk.TaskSpec:
        if spec is not None:
            return spec
        assert ref is not None
        found = self.lookups.task(namespace, ref.name)
        if found is None:
            raise RunFailed("TaskRunResolutionFailed", f'tasks.tekton.dev "{ref.name}" not found')
        return found

    async def _run(
        self,
        spec: tk.TaskSpec,
        params: Mapping[str, Value],
        record: rec.TaskRunRecord,
        bound: Mapping[str, str],
        timeout_s: float | None,
        control: runner.RunControl,
        extra: Mapping[str, Value],
        retries: int,
        pipeline_context: Mapping[str, str] | None = None,
    ) -> None:
        """Run a TaskRun, again while it fails and retries are left."""
        while True:
            context = {
                "context.taskRun.name": record.name,
                "context.taskRun.namespace": record.namespace,
                "context.taskRun.uid": record.name,
                "context.task.name": record.task,
                "context.task.retry-count": str(len(record.retries)),
                **(pipeline_context or {}),
            }
            plan = plan_task(
                spec, params, run_dir=record.run_dir, bound=bound, context={**extra, **context}
            )
            missing = self._fill_config_volumes(plan, record.namespace)
            if missing is not None:
                record.finish("CreateContainerConfigError", missing, time.time())
                self.on_change()
                return
            await runner.run_task(
                plan, record, timeout_s=timeout_s, control=control, on_change=self.on_change
            )
            if record.succeeded or control.cancelled or len(record.retries) >= retries:
                return
            record.retry()
            self.on_change()

    def _fill_config_volumes(self, plan: TaskPlan, namespace: str) -> str | None:
        """Write each configMap volume's files; why not, for a ConfigMap not there."""
        for v in plan.config_volumes:
            data = self.lookups.config_map(namespace, v.config_map)
            if data is None and not v.optional:
                return f'configmap "{v.config_map}" not found'
            _fill(Path(v.directory), data or {}, dict(v.items))
        return None

    def cancel_task_run(self, namespace: str, name: str, message: str = "") -> None:
        control = self.task_controls.get((namespace, name))
        if control is not None:
            control.cancel(message)

    # ---- PipelineRuns -----------------------------------------------------------------

    def pipeline_run(self, run: tk.PipelineRun, now: float) -> rec.PipelineRunRecord:
        pipeline = run.spec.pipelineRef.name if run.spec.pipelineRef is not None else ""
        return rec.PipelineRunRecord(
            run.name,
            run.namespace,
            pipeline=pipeline,
            labels=dict(run.metadata.labels),
            created=now,
        )

    async def run_pipeline(
        self, run: tk.PipelineRun, record: rec.PipelineRunRecord, control: PipelineControl
    ) -> None:
        now = time.time()
        record.started = now
        try:
            state, bound, specs = self._prepare_pipeline(run, now)
        except (RunFailed, ParamError) as err:
            record.set_condition("False", err.reason, err.message, time.time())
            self.on_change()
            return
        record.spec = state.spec.model_dump(by_alias=True, exclude_defaults=True)
        running: dict[str, asyncio.Task[None]] = {}
        try:
            await self._drive(run, record, control, state, bound, specs, running)
        finally:
            for task in running.values():
                task.cancel()
            for task in running.values():
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _prepare_pipeline(
        self, run: tk.PipelineRun, now: float
    ) -> tuple[sch.PipelineRunState, dict[str, str], dict[str, tk.TaskSpec]]:
        if run.spec.pipelineSpec is not None:
            spec, pipeline = run.spec.pipelineSpec, ""
        else:
            assert run.spec.pipelineRef is not None
            pipeline = run.spec.pipelineRef.name
            found = self.lookups.pipeline(run.namespace, pipeline)
            if found is None:
                raise RunFailed(
                    "CouldntGetPipeline",
                    f"Error retrieving pipeline for pipelinerun {run.namespace}/{run.name}: "
                    f'pipelines.tekton.dev "{pipeline}" not found',
                )
            spec = found
        try:
            params = resolve_params(
                spec.params,
                [(p.name, p.value) for p in run.spec.params],
                f"PipelineRun {run.namespace}/{run.name}",
            )
        except ParamError as err:
            raise RunFailed(err.reason, err.message) from None
        if run.spec.pipelineSpec is not None:
            # An embedded pipelineSpec sees the run's params it does not declare too
            # (Tekton's propagated params), and so do its embedded taskSpecs.
            for p in run.spec.params:
                params.setdefault(p.name, p.value)
        specs: dict[str, tk.TaskSpec] = {}
        missing = []
        for t in [*spec.tasks, *spec.finally_]:
            try:
                specs[t.name] = self._task_spec(run.namespace, t.taskRef, t.taskSpec)
            except RunFailed:
                missing.append(t.taskRef.name if t.taskRef else t.name)
        if missing:
            raise RunFailed(
                "CouldntGetTask",
                f"Pipeline {run.namespace}/{pipeline or run.name} can't be Run; it contains "
                f"Tasks that don't exist: {', '.join(repr(m) for m in missing)}",
            )
        given = {b.name for b in run.spec.workspaces}
        for w in spec.workspaces:
            if w.name not in given and not w.optional:
                raise RunFailed(
                    "InvalidWorkspaceBindings",
                    f'pipeline requires workspace with name "{w.name}" be provided by pipelinerun',
                )
        own = self.pipeline_run_dir(run.namespace, run.name)
        bound = self._bind(run.spec.workspaces, run.namespace, own)
        values = Values()
        values.update(param_values(params))
        values.update(
            {
                "context.pipelineRun.name": run.name,
                "context.pipelineRun.namespace": run.namespace,
                "context.pipelineRun.uid": run.name,
                "context.pipeline.name": pipeline or run.name,
            }
        )
        for w in spec.workspaces:
            values.set(f"workspaces.{w.name}.bound", "true" if w.name in bound else "false")
        state = sch.PipelineRunState(run.name, spec, values, now, sch.Timeouts.of(run.spec))
        return state, bound, specs

    async def _drive(
        self,
        run: tk.PipelineRun,
        record: rec.PipelineRunRecord,
        control: PipelineControl,
        state: sch.PipelineRunState,
        bound: dict[str, str],
        specs: dict[str, tk.TaskSpec],
        running: dict[str, asyncio.Task[None]],
    ) -> None:
        children: dict[str, list[rec.TaskRunRecord]] = {}
        while True:
            now = time.time()
            if control.mode is not None:
                state.cancel(control.mode)
            expired = state.expire(now)
            for name in state.to_cancel():
                message = (
                    rec.CANCELLED_BY_PIPELINE_TIMEOUT
                    if expired or state.timed_out
                    else rec.CANCELLED_BY_PIPELINE
                )
                for child in children[name]:
                    self.cancel_task_run(run.namespace, child.name, message)
            for launch in state.schedule(now):
                state.task_started(launch.name, now)
                record.finally_started = state.finally_started
                base = child_name(run.name, launch.name)
                names = (
                    [base]
                    if launch.combinations is None
                    else [
                        child_name(run.name, f"{launch.name}-{i}")
                        for i in range(len(launch.combinations))
                    ]
                )
                children[launch.name] = [self._child(run, launch, n, now) for n in names]
                record.children += [(c.name, launch.name) for c in children[launch.name]]
                running[launch.name] = asyncio.ensure_future(
                    self._fan_out(run, launch, specs[launch.name], children[launch.name], bound)
                )
            record.finally_started = state.finally_started
            self._publish(record, state, now)
            if state.done:
                return
            waiters: set[asyncio.Future[Any]] = set(running.values())
            control.changed.clear()
            changed = asyncio.ensure_future(control.changed.wait())
            deadline = state.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.time()) + 0.01
            done, _ = await asyncio.wait(
                {*waiters, changed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            changed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await changed
            for name, task in list(running.items()):
                if task in done:
                    del running[name]
                    task.result()
                    matrixed = state.tasks[name].matrix_length is not None
                    outcome, results = _outcome(children[name], matrixed=matrixed)
                    state.task_finished(name, outcome, results, time.time())

    def _child(
        self, run: tk.PipelineRun, launch: sch.Launch, name: str, now: float
    ) -> rec.TaskRunRecord:
        task = launch.task.taskRef.name if launch.task.taskRef is not None else launch.name
        child = rec.TaskRunRecord(
            name,
            run.namespace,
            task=task,
            pipeline_run=run.name,
            pipeline_task=launch.name,
            run_dir=str(self.task_run_dir(run.namespace, name)),
            created=now,
        )
        self.task_runs[(run.namespace, name)] = child
        self.task_controls[(run.namespace, name)] = runner.RunControl()
        return child

    async def _fan_out(
        self,
        run: tk.PipelineRun,
        launch: sch.Launch,
        spec: tk.TaskSpec,
        children: list[rec.TaskRunRecord],
        bound: Mapping[str, str],
    ) -> None:
        """A pipeline task's TaskRun, or one per matrix combination, all at once."""
        combos = launch.combinations if launch.combinations is not None else ({},)
        await asyncio.gather(
            *(
                self._pipeline_task(run, launch, {**launch.params, **combo}, spec, child, bound)
                for combo, child in zip(combos, children, strict=True)
            )
        )

    async def _pipeline_task(
        self,
        run: tk.PipelineRun,
        launch: sch.Launch,
        given: Mapping[str, Value],
        spec: tk.TaskSpec,
        child: rec.TaskRunRecord,
        bound: Mapping[str, str],
    ) -> None:
        control = self.task_controls[(run.namespace, child.name)]
        try:
            params = resolve_params(spec.params, list(given.items()), f"TaskRun {child.name}")
            task_bound = _task_bindings(launch, bound)
            _check_workspaces(spec, task_bound)
        except (ParamError, RunFailed) as err:
            child.finish(rec.VALIDATION_FAILED, err.message, time.time())
            self.on_change()
            return
        # An embedded taskSpec sees the pipeline's params (Tekton propagates them).
        extra = {
            k: v for k, v in launch.values.known.items() if k.startswith(("params.", "tasks."))
        }
        if launch.task.taskRef is not None:
            extra = {}
        await self._run(
            spec,
            params,
            child,
            task_bound,
            launch.timeout_s,
            control,
            extra,
            launch.task.retries,
            {
                "context.pipelineRun.name": run.name,
                "context.pipelineRun.namespace": run.namespace,
                "context.pipelineRun.uid": run.name,
                "context.pipeline.name": run.spec.pipelineRef.name
                if run.spec.pipelineRef is not None
                else run.name,
                "context.pipelineTask.retries": str(launch.task.retries),
            },
        )

    def _publish(
        self, record: rec.PipelineRunRecord, state: sch.PipelineRunState, now: float
    ) -> None:
        status, reason, message = state.condition(now)
        record.set_condition(status, reason, message, now)
        record.skipped = state.skipped_tasks()
        if state.done:
            record.results = state.results()
        self.on_change()


def _outcome(
    children: Sequence[rec.TaskRunRecord], *, matrixed: bool
) -> tuple[sch.Outcome, dict[str, Value]]:
    """A pipeline task's outcome from its TaskRuns (several for a matrix: each string
    result becomes an array of theirs, as Tekton aggregates them)."""
    if any(c.reason == rec.CANCELLED for c in children):
        outcome = sch.Outcome.CANCELLED
    elif all(c.succeeded for c in children):
        outcome = sch.Outcome.SUCCEEDED
    else:
        outcome = sch.Outcome.FAILED
    if not matrixed:
        return outcome, dict(children[0].results) if children else {}
    aggregated: dict[str, Value] = {}
    for c in children:
        for k, v in c.results.items():
            found = aggregated.setdefault(k, [])
            if isinstance(found, list) and isinstance(v, str):
                found.append(v)
    return outcome, aggregated


def _task_bindings(launch: sch.Launch, bound: Mapping[str, str]) -> dict[str, str]:
    """A pipeline task's workspaces: the pipeline's directories (with subPath, made).
    An embedded taskSpec also gets the pipeline's other workspaces (propagated)."""
    out: dict[str, str] = {}
    for b in launch.task.workspaces:
        source = bound.get(b.workspace or b.name)
        if source is not None:
            sub = launch.values.string(b.subPath)
            out[b.name] = f"{source}/{sub}" if sub else source
            Path(out[b.name]).mkdir(parents=True, exist_ok=True)
    if launch.task.taskSpec is not None:
        for name, source in bound.items():
            out.setdefault(name, source)
    return out


def _check_workspaces(spec: tk.TaskSpec, bound: Mapping[str, str]) -> None:
    for w in spec.workspaces:
        if w.name not in bound and not w.optional:
            raise RunFailed(
                rec.VALIDATION_FAILED,
                f"bound workspaces did not match declared workspaces: didn't provide required "
                f'values: ["{w.name}"]',
            )


def _fill_secret(directory: Path, data: Mapping[str, bytes], items: Mapping[str, str]) -> None:
    """A Secret as files, readable by the runner's user alone (0400 in a 0700 directory),
    written as they are created so no other user ever sees one readable."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    chosen = items or {k: k for k in data}
    for key, rel in chosen.items():
        if key not in data or ".." in rel.split("/") or rel.startswith("/"):
            continue
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a run again: its old file is read-only
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o400)
        try:
            os.write(fd, data[key])
        finally:
            os.close(fd)


def _fill(directory: Path, data: Mapping[str, str], items: Mapping[str, str]) -> None:
    """A ConfigMap as files: each key (or each listed item at its path)."""
    directory.mkdir(parents=True, exist_ok=True)
    chosen = items or {k: k for k in data}
    for key, rel in chosen.items():
        if key not in data or ".." in rel.split("/") or rel.startswith("/"):
            continue
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data[key])
