"""Run one TaskRun on this host: its steps in order, each a process, its sidecars
beside them. I/O; what runs was decided by `taskplan` and is recorded in a
`records.TaskRunRecord`.

    control = RunControl()
    await run_task(plan, record, timeout_s=3600, control=control, on_change=save)
    control.cancel("TaskRun cancelled as ...")   # from elsewhere: stops the running step

Each step runs in a session of its own (its whole process group is stopped on a
timeout or a cancel), with the run's directories ready: its output goes to
`RUN/logs/step-NAME.log`, its exit code to `RUN/tekton/steps/step-NAME/exitCode`,
and the results it writes under `RUN/tekton/results` are read once the steps end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

from amimesh.pipelines import records as rec
from amimesh.pipelines.scheduler import go_duration
from amimesh.pipelines.taskplan import MAX_RESULTS_BYTES, RESULTS_TOO_LARGE, StepPlan, TaskPlan
from amimesh.pipelines.values import Value

# How long a stopped step has, after SIGTERM, before SIGKILL.
STOP_GRACE_S = 2.0
# The environment a step starts from, before its own `env`.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL", "TERM")


class RunControl:
    """Stops a TaskRun from outside: `cancel(message)` ends the running step at once."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.message = ""
        self.reason = rec.CANCELLED

    def cancel(self, message: str = "", reason: str = rec.CANCELLED) -> None:
        if not self.event.is_set():
            self.message, self.reason = message, reason
            self.event.set()

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()


def base_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    source = os.environ if environ is None else environ
    return {k: source[k] for k in PASSED_ENV if k in source}


def log_path(run_dir: str, container: str) -> Path:
    return Path(run_dir) / "logs" / f"{container}.log"


def prepare(plan: TaskPlan) -> None:
    """The run's directories, and each bound workspace where the steps look for it."""
    for d in plan.dirs:
        Path(d).mkdir(parents=True, exist_ok=True)
    results = Path(plan.results_dir)
    for stale in results.iterdir():
        if stale.is_file():
            stale.unlink()
    logs = Path(plan.run_dir) / "logs"
    logs.mkdir(exist_ok=True)
    for stale in logs.iterdir():  # a retry's logs are its own, as a new pod's are
        if stale.is_file():
            stale.unlink()
    steps = Path(plan.run_dir) / "tekton" / "steps"
    for i, step in enumerate(plan.steps):  # /tekton/steps/N, as Tekton links them
        link = steps / str(i)
        if not link.is_symlink():
            link.symlink_to(step.container, target_is_directory=True)
    for link_path, target in plan.mounts:
        _link(Path(link_path), target)
    for w in plan.workspaces:
        if w.target is None:
            continue
        _link(Path(w.path), w.target)


def _link(link: Path, target: str) -> None:
    """`link` made a link to the directory `target` (made too), where a step looks."""
    Path(target).mkdir(parents=True, exist_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if not link.is_symlink() or os.readlink(link) == target:
            return
        link.unlink()
    link.symlink_to(target, target_is_directory=True)


async def run_task(
    plan: TaskPlan,
    record: rec.TaskRunRecord,
    *,
    timeout_s: float | None,
    control: RunControl,
    on_change: Callable[[], None] = lambda: None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Run the TaskRun to its end (succeeded, failed, timed out or cancelled), keeping
    `record` up to date and calling `on_change` after each change."""
    record.steps = [rec.StepRecord(s.name, s.container, s.image) for s in plan.steps]
    record.sidecars = [rec.StepRecord(s.name, s.container, s.image) for s in plan.sidecars]
    record.timeout_s = timeout_s
    record.start(time.time())
    on_change()
    deadline = time.monotonic() + timeout_s if timeout_s else None
    env = base_env(environ)
    try:
        prepare(plan)
    except OSError as err:
        record.finish(rec.FAILED, f"could not prepare the run's directory: {err}", time.time())
        on_change()
        return
    sidecars = [await _start(s, plan, env, i, "sidecar") for i, s in enumerate(plan.sidecars)]
    for proc, s_rec in zip(sidecars, record.sidecars, strict=True):
        if isinstance(proc, asyncio.subprocess.Process):
            s_rec.start(time.time())
        else:
            s_rec.finish(1, rec.ERROR, time.time(), proc)
    on_change()
    try:
        failure = await _run_steps(plan, record, deadline, control, env, on_change)
    finally:
        for proc, s_rec in zip(sidecars, record.sidecars, strict=True):
            if isinstance(proc, asyncio.subprocess.Process):
                code = await _stop(proc)
                s_rec.finish(code, rec.COMPLETED, time.time())
    now = time.time()
    if failure is None:
        failure = _read_results(plan, record)
    if failure is None:
        record.finish(rec.SUCCEEDED, rec.SUCCEEDED_MESSAGE, now)
    else:
        record.finish(failure[0], failure[1], now)
    on_change()


async def _run_steps(
    plan: TaskPlan,
    record: rec.TaskRunRecord,
    deadline: float | None,
    control: RunControl,
    env: dict[str, str],
    on_change: Callable[[], None],
) -> tuple[str, str] | None:
    failure: tuple[str, str] | None = None
    for i, (step, s_rec) in enumerate(zip(plan.steps, record.steps, strict=True)):
        if failure is not None:
            s_rec.finish(1, rec.SKIPPED, time.time())
            continue
        if control.cancelled:
            failure = _cancelled(record, control)
            s_rec.finish(1, rec.SKIPPED, time.time())
            continue
        if step.problem is not None:
            s_rec.finish(1, rec.ERROR, time.time(), step.problem)
            failure = (rec.FAILED, step.problem)
            continue
        started = await _start(step, plan, env, i, "step")
        s_rec.start(time.time())
        on_change()
        if isinstance(started, str):
            s_rec.finish(1, rec.ERROR, time.time(), started)
            failure = (rec.FAILED, f'"{step.container}" could not start: {started}')
            continue
        outcome, code = await _wait(started, step, deadline, control)
        _write(Path(plan.exit_code_path(step.container)), str(code))
        now = time.time()
        if outcome == "exited" and code == 0:
            s_rec.finish(0, rec.COMPLETED, now)
        elif outcome == "exited" and step.on_error == "continue":
            s_rec.finish(code, rec.CONTINUED, now)
        elif outcome == "exited":
            s_rec.finish(code, rec.ERROR, now)
            failure = (rec.FAILED, f'"{step.container}" exited with code {code}: Error')
        elif outcome == "step-timeout":
            s_rec.finish(code, rec.TIMEOUT_EXCEEDED, now)
            if step.on_error != "continue":
                failure = (
                    rec.FAILED,
                    f'"{step.container}" exited because the step exceeded the specified '
                    "timeout limit",
                )
        elif outcome == "timeout":
            s_rec.finish(code, rec.TIMEOUT_EXCEEDED, now)
            failure = (
                rec.TIMED_OUT,
                f'TaskRun "{record.name}" failed to finish within '
                f'"{go_duration(record.timeout_s or 0)}"',
            )
        else:
            s_rec.finish(code, rec.STEP_CANCELLED, now)
            failure = _cancelled(record, control)
        on_change()
    return failure


def _cancelled(record: rec.TaskRunRecord, control: RunControl) -> tuple[str, str]:
    if control.reason != rec.CANCELLED:
        return control.reason, control.message
    return rec.CANCELLED, f'TaskRun "{record.name}" was cancelled. {control.message}'.rstrip()


async def _start(
    step: StepPlan, plan: TaskPlan, env: dict[str, str], index: int, kind: str
) -> asyncio.subprocess.Process | str:
    """The step's process, started; or why it could not start."""
    argv = _argv(step, plan, index, kind)
    if not argv:
        return step.problem or "nothing to run"
    log = log_path(plan.run_dir, step.container)
    out = _open_log(log)
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=step.working_dir,
            env={**env, **dict(step.env)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as err:
        out.write(f"{err}\n".encode())
        return str(err)
    finally:
        out.close()


def _argv(step: StepPlan, plan: TaskPlan, index: int, kind: str) -> list[str]:
    """What to exec: the script written out (run with `args`), or command and args.
    A working directory under the run's is made first, as Tekton makes it."""
    if step.working_dir.startswith(plan.run_dir):
        Path(step.working_dir).mkdir(parents=True, exist_ok=True)
    if step.script is None:
        return [*step.argv, *step.args]
    script = Path(plan.run_dir) / "tekton" / "scripts" / f"{kind}-{index}-{step.name}"
    script.write_text(step.script)
    script.chmod(0o755)
    return [str(script), *step.args]


def _open_log(path: Path) -> BinaryIO:
    return open(path, "ab")  # noqa: SIM115 - handed to the child, closed by the caller


def _write(path: Path, text: str) -> None:
    path.write_text(text)


async def _wait(
    proc: asyncio.subprocess.Process,
    step: StepPlan,
    deadline: float | None,
    control: RunControl,
) -> tuple[str, int]:
    """("exited" | "step-timeout" | "timeout" | "cancelled", exit code)."""
    now = time.monotonic()
    limits: list[tuple[float, str]] = []
    if step.timeout_s is not None:
        limits.append((now + step.timeout_s, "step-timeout"))
    if deadline is not None:
        limits.append((deadline, "timeout"))
    limit, why = min(limits) if limits else (None, "")
    waiter = asyncio.ensure_future(proc.wait())
    cancel = asyncio.ensure_future(control.event.wait())
    try:
        wait_s = None if limit is None else max(0.0, limit - time.monotonic())
        done, _ = await asyncio.wait(
            {waiter, cancel}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
        )
    except asyncio.CancelledError:  # the run's owner is going away: so does the step
        waiter.cancel()
        _signal_group(proc.pid, signal.SIGKILL)
        raise
    finally:
        cancel.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cancel
    if waiter in done:
        return "exited", waiter.result()
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    code = await _stop(proc)
    return ("cancelled" if cancel in done else why), code


async def _stop(proc: asyncio.subprocess.Process) -> int:
    """Stop a process and its group: SIGTERM, then SIGKILL after a grace period."""
    if proc.returncode is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
    _signal_group(proc.pid, signal.SIGKILL)  # what it left behind in its group
    code = proc.returncode
    assert code is not None
    return code if code >= 0 else 128 - code


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _read_results(plan: TaskPlan, record: rec.TaskRunRecord) -> tuple[str, str] | None:
    """The results the steps wrote, or the failure Tekton reports for them."""
    total = 0
    for r in plan.results:
        path = Path(plan.results_dir) / r.name
        if not path.is_file():
            continue
        data = path.read_bytes()
        total += len(data)
        if total > MAX_RESULTS_BYTES:
            record.results = {}
            return rec.FAILED, RESULTS_TOO_LARGE
        text = data.decode(errors="replace")
        value: Value = text
        if r.type in ("array", "object"):
            try:
                parsed = json.loads(text)
            except ValueError:
                return rec.FAILED, f"result {r.name!r} of type {r.type} is not JSON: {text[:80]!r}"
            if r.type == "array" and isinstance(parsed, list):
                value = [str(v) for v in parsed]
            elif r.type == "object" and isinstance(parsed, dict):
                value = {str(k): str(v) for k, v in parsed.items()}
            else:
                return rec.FAILED, f"result {r.name!r} is not a JSON {r.type}"
        record.results[r.name] = value
        record.result_types[r.name] = r.type
    return None
