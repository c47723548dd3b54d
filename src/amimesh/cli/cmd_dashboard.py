"""`ami dashboard`: open the running mesh's web dashboard (service graph, golden
metrics, traces, config, proxies' sync state) in a browser, signed in.

The URL carries the mesh's API token once (`/dashboard/?token=...`): the control
plane answers with a cookie and a redirect that drops it from the address bar.
"""

from __future__ import annotations

import argparse
from typing import Any

from amimesh.cli.cmd_apply import MESH_HELP


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "dashboard",
        help="open the running mesh's web dashboard: graph, metrics, traces, config, proxies",
    )
    p.add_argument("--mesh", help=MESH_HELP)
    p.add_argument(
        "--no-open", action="store_true", help="print the dashboard's URL, do not open a browser"
    )
    p.add_argument(
        "--print-url",
        action="store_true",
        help="print only the URL (it holds the mesh's token), for scripts; implies --no-open",
    )
    p.set_defaults(run=run)


def dashboard_url(mesh: str | None = None) -> str:
    """The signed-in dashboard URL of mesh `mesh` (None: the mesh started last), once
    its control plane answers. `client.NotRunning` when no mesh runs."""
    import urllib.parse

    from amimesh.cli import client
    from amimesh.runtime import state

    api = client.connect(mesh)
    api.get("/api/v1/status")  # it answers, and takes the token
    try:
        token = state.find(mesh).read_token()
    except OSError as err:
        raise client.NotRunning(f"cannot read the mesh's token: {err}") from None
    return f"{api.base_url}/dashboard/?{urllib.parse.urlencode({'token': token})}"


def run(args: argparse.Namespace) -> int:
    import webbrowser

    from amimesh.cli import client, render

    def dashboard() -> int:
        url = dashboard_url(args.mesh)
        if args.print_url:
            print(url, flush=True)
            return 0
        out = render.console()
        out.print("Dashboard (this URL holds the mesh's token; keep it to yourself):")
        out.print(f"  {url}", markup=False, soft_wrap=True)
        if args.no_open:
            return 0
        if webbrowser.open(url, new=2):
            out.print("Opened in your browser.")
        else:
            out.print("No browser found here: open the URL above in one.")
        return 0

    return client.guarded(dashboard)
