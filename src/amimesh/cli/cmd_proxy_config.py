"""`ami proxy-config PROXY clusters|listeners|routes|endpoints [-o json]`: what one
Envoy really holds, read from its own admin interface (not from the control plane).

PROXY is a proxy id, a workload name, or a prefix of an id; the control plane's API
says which proxies are connected and where their admin listens (loopback).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from amimesh.cli.cmd_apply import MESH_HELP

SECTIONS = ("clusters", "listeners", "routes", "endpoints")
DUMP_TYPES = {
    "clusters": "ClustersConfigDump",
    "listeners": "ListenersConfigDump",
    "routes": "RoutesConfigDump",
}


class NoSuchProxy(LookupError):
    pass


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "proxy-config", help="clusters, listeners, routes or endpoints one Envoy holds"
    )
    p.add_argument("proxy", metavar="PROXY", help="proxy id, workload name, or id prefix")
    p.add_argument("section", choices=SECTIONS)
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument("--mesh", help=MESH_HELP)
    p.set_defaults(run=run)


def pick(proxies: Sequence[Mapping[str, Any]], wanted: str) -> Mapping[str, Any]:
    """The one proxy `wanted` names: exact id, else workload (or workload.namespace),
    else id prefix. `NoSuchProxy` says why not (none, or which ones are ambiguous)."""
    by_id = {str(p.get("id")): p for p in proxies}
    if wanted in by_id:
        return by_id[wanted]

    def by_workload(p: Mapping[str, Any]) -> bool:
        return wanted in (p.get("workload"), f"{p.get('workload')}.{p.get('namespace')}")

    def by_prefix(p: Mapping[str, Any]) -> bool:
        return str(p.get("id", "")).startswith(wanted)

    for test in (by_workload, by_prefix):
        found = [p for p in by_id.values() if test(p)]
        if len(found) == 1:
            return found[0]
        if found:
            ids = ", ".join(sorted(str(p.get("id")) for p in found))
            raise NoSuchProxy(f'"{wanted}" names several proxies: {ids}; give one id')
    known = ", ".join(sorted(by_id)) or "none is connected"
    raise NoSuchProxy(f'no proxy "{wanted}" (connected proxies: {known})')


def fetch_admin(port: int, path: str, timeout: float = 10.0) -> Any:
    import json
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
        return json.loads(resp.read())


def run(args: argparse.Namespace) -> int:
    import json
    import urllib.error

    from amimesh.cli import client, render, render_envoy

    out, err = render.console(), render.console(stderr=True)

    def show() -> int:
        proxies = client.connect(args.mesh).get("/api/v1/proxies").get("proxies", [])
        try:
            proxy = pick(proxies, args.proxy)
        except NoSuchProxy as e:
            render.print_error(err, str(e))
            return 1
        port = int(proxy.get("admin_port") or 0)
        if not port:
            render.print_error(err, f"proxy {proxy.get('id')} did not say where its admin listens")
            return 1
        path = "/clusters?format=json" if args.section == "endpoints" else "/config_dump"
        if args.section == "clusters":
            path += "?include_eds"
        try:
            with err.status(f"reading {proxy.get('id')}'s Envoy admin"):
                data = fetch_admin(port, path)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            render.print_error(
                err,
                f"cannot read the Envoy admin of {proxy.get('id')} at 127.0.0.1:{port}: {reason}",
            )
            return 1
        if args.output == "json":
            section = DUMP_TYPES.get(args.section)
            shown = render_envoy.dump_section(data, section) if section else data
            out.print(json.dumps(shown, indent=2), markup=False)
            return 0
        views = {
            "clusters": render_envoy.clusters_table,
            "listeners": render_envoy.listeners_table,
            "routes": render_envoy.routes_table,
            "endpoints": render_envoy.endpoints_table,
        }
        out.print(views[args.section](data))
        return 0

    return client.guarded(show)
