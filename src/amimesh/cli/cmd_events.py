"""`ami events BROKER [-f]`: the last events a broker took and where each went.

ami events default              the last 20: time, id, type, source, each trigger's outcome
ami events default --last 100 -o json
ami events default -f           and then every delivery as it happens (Ctrl-C ends)
"""

from __future__ import annotations

import argparse
from typing import Any

from amimesh.cli.cmd_apply import MESH_HELP


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "events", help="the last events a broker took and where each was delivered"
    )
    p.add_argument("broker", metavar="BROKER")
    p.add_argument("-n", "--namespace", default="default", help="default: default")
    p.add_argument("--last", type=int, default=20, metavar="N", help="how many (default 20)")
    p.add_argument("-f", "--follow", action="store_true", help="then each delivery as it happens")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument("--mesh", help=MESH_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from amimesh.cli import eventing, render, render_eventing
    from amimesh.eventing import history
    from amimesh.runtime import state

    out, err = render.console(), render.console(stderr=True)

    def follow(batch: list[history.Record]) -> None:
        for line in render_eventing.record_lines(batch):
            out.print(line, markup=False)

    try:
        mesh = state.find(args.mesh)
        records = eventing.history_of(mesh, args.namespace, args.broker)
        rows = history.summarize(records, args.last)
        if args.output == "json":
            out.print(json.dumps([r.to_json() for r in rows], indent=2), markup=False)
        elif rows:
            out.print(render_eventing.events_table(rows))
        else:
            err.print(f"No events taken by broker {args.namespace}/{args.broker}.")
        if args.follow:
            eventing.history_of(mesh, args.namespace, args.broker, follow=follow)
    except KeyboardInterrupt:
        return 0
    except (eventing.NoBroker, FileNotFoundError, OSError) as e:
        render.print_error(err, str(e))
        return 1
    return 0
