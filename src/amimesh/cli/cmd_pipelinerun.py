"""`ami pipelinerun list|describe|logs|cancel`: Tekton PipelineRuns, in `tkn`'s words.

ami pipelinerun logs build-run-x7k2p -f      # [task : step] line, as they come
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from amimesh.cli import tkn_shared as shared

if TYPE_CHECKING:
    from amimesh.cli.client import MeshClient

KIND = "PipelineRun"


def add_parser(sub: Any) -> None:
    shared.add_run_parser(
        sub, "pipelinerun", KIND, "a pipeline run: status, params, results, task runs", run_describe
    )


def run_describe(args: argparse.Namespace) -> int:
    from amimesh.cli import render_tekton, tekton

    def view(api: MeshClient, run: dict[str, Any]) -> Any:
        try:
            spec = tekton.get_def(api, KIND, args.namespace, args.name).get("spec", {})
        except tekton.NotFound:
            spec = {}
        children = [
            tekton.get_run(api, "TaskRun", args.namespace, ref["name"])
            for ref in (run.get("status") or {}).get("childReferences") or []
        ]
        return render_tekton.pipelinerun_view(run, spec, children, time.time())

    return shared.show_one(
        args, lambda api: tekton.get_run(api, KIND, args.namespace, args.name), view
    )
