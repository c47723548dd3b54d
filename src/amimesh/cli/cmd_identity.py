"""`ami identity NAME`: an instance's SPIFFE ID, certificate serial and lifetime, and
the trust bundle, as its agent holds them now."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "identity",
        help="the SPIFFE ID, certificate and trust bundle of a workload or an instance",
    )
    p.add_argument("name", metavar="NAME", help="workload name, instance name or instance id")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.add_argument("--mesh", help="mesh name, config directory or state dir (default: current)")
    p.add_argument("--state-dir", type=Path, help="root of the state dirs, as given to `ami up`")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import datetime
    import json

    from amimesh.cli import render
    from amimesh.runtime import identity, logs, state

    out, err = render.console(), render.console(stderr=True)
    try:
        st = state.find(args.mesh, args.state_dir)
    except FileNotFoundError as e:
        render.print_error(err, str(e))
        return 2
    found = identity.find(st, args.name)
    if not found:
        known = sorted({i.workload for i in logs.instances(st)})
        render.print_error(err, f"no workload or instance {args.name!r}; workloads: {known}")
        return 1
    if args.output == "json":
        data = [i.to_json() for i in found]
        out.print(json.dumps(data if len(data) > 1 else data[0], indent=2), markup=False)
        return 0 if all(i.leaf for i in found) else 1
    now = datetime.datetime.now(datetime.UTC)
    for n, inst in enumerate(found):
        if n:
            out.print()
        for line in identity.text_lines(inst, now):
            out.print(line, markup=False, highlight=False)
    return 0 if all(i.leaf for i in found) else 1
