"""`ami taskrun list|describe|logs|cancel`: Tekton TaskRuns, in `tkn`'s words."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from amimesh.cli import tkn_shared as shared

if TYPE_CHECKING:
    from amimesh.cli.client import MeshClient

KIND = "TaskRun"


def add_parser(sub: Any) -> None:
    shared.add_run_parser(
        sub, "taskrun", KIND, "a task run: status, params, results, steps", run_describe
    )


def run_describe(args: argparse.Namespace) -> int:
    from amimesh.cli import render_tekton, tekton

    def view(api: MeshClient, tr: dict[str, Any]) -> Any:
        try:
            spec = tekton.get_def(api, KIND, args.namespace, args.name).get("spec", {})
        except tekton.NotFound:
            spec = {}  # a PipelineRun's TaskRun: its params are the pipeline task's
        return render_tekton.taskrun_view(tr, spec, time.time())

    return shared.show_one(
        args, lambda api: tekton.get_run(api, KIND, args.namespace, args.name), view
    )
