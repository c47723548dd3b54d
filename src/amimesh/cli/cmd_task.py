"""`ami task list|start`: Tekton Tasks, in `tkn`'s words.

ami task start hello -p who=mesh --showlog
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from amimesh.cli import tkn_shared as shared

if TYPE_CHECKING:
    from amimesh.cli.client import MeshClient


def add_parser(sub: Any) -> None:
    actions = shared.add_actions(sub, "task", "Tekton Tasks, in tkn's words: list, start")
    shared.add_list(actions, "list tasks", run_list)
    shared.add_start(actions, "Task", lambda args: shared.start(args, "Task"))


def run_list(args: argparse.Namespace) -> int:
    from amimesh.cli import render_tekton, tekton

    ns = shared.namespace_of(args)

    def table(api: MeshClient, items: list[dict[str, Any]]) -> Any:
        return render_tekton.tasks_table(items, time.time(), namespaces=ns is None)

    return shared.show_list(
        args, lambda api: tekton.list_defs(api, "Task", ns), table, "No tasks found"
    )
