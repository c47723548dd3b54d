"""`ami pipeline list|describe|start`: Tekton Pipelines, in `tkn`'s words.

ami pipeline start build -p rev=main -w name=source,emptyDir= --showlog
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from amimesh.cli import tkn_shared as shared

if TYPE_CHECKING:
    from amimesh.cli.client import MeshClient


def add_parser(sub: Any) -> None:
    actions = shared.add_actions(
        sub, "pipeline", "Tekton Pipelines, in tkn's words: list, describe, start"
    )
    shared.add_list(actions, "list pipelines and their last run", run_list)
    shared.add_describe(actions, "a pipeline: params, tasks, finally, runs", run_describe)
    shared.add_start(actions, "Pipeline", lambda args: shared.start(args, "Pipeline"))


def run_list(args: argparse.Namespace) -> int:
    from amimesh.cli import render_tekton, tekton

    ns = shared.namespace_of(args)

    def table(api: MeshClient, items: list[dict[str, Any]]) -> Any:
        runs = tekton.list_runs(api, "PipelineRun", ns)
        return render_tekton.pipelines_table(items, runs, time.time(), namespaces=ns is None)

    return shared.show_list(
        args, lambda api: tekton.list_defs(api, "Pipeline", ns), table, "No pipelines found"
    )


def run_describe(args: argparse.Namespace) -> int:
    from amimesh.cli import render_tekton, tekton

    def view(api: MeshClient, item: dict[str, Any]) -> Any:
        runs = tekton.list_runs(api, "PipelineRun", args.namespace)
        return render_tekton.pipeline_view(item, runs, time.time())

    return shared.show_one(
        args, lambda api: tekton.get_def(api, "Pipeline", args.namespace, args.name), view
    )
