"""`ami analyze [PATH...]`: config that validates but will not do what was meant.

With paths, the YAML there is analyzed offline (no mesh needed); without, the running
mesh's config is. Exit 1 if any finding is an Error (or, offline, a file does not load).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amimesh.cli.cmd_apply import MESH_HELP

if TYPE_CHECKING:
    from amimesh.resources import Resource


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "analyze", help="find mistakes across resources (files, or the running mesh)"
    )
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or directories")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.add_argument("--mesh", help=MESH_HELP + "; used without PATH")
    p.set_defaults(run=run)


def analyze_paths(paths: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """(findings as the API gives them, load errors) for the YAML under `paths`."""
    from amimesh.model.analyze import analyze
    from amimesh.model.snapshot import build_snapshot
    from amimesh.resources import ConfigError, load_path
    from amimesh.resources.files import yaml_files

    files: list[Path] = []
    for root in paths:
        if not root.exists():
            raise FileNotFoundError(f"no such file or directory: {root}")
        files += yaml_files(root) if root.is_dir() else [root]
    resources: dict[tuple[str, str, str], Resource] = {}
    sources: dict[tuple[str, str, str], str] = {}
    errors: list[ConfigError] = []
    for f in files:
        result = load_path(f)
        errors += result.errors
        for r in result.resources:
            if r.key in resources:
                message = f"{r.ref} is already defined in {sources[r.key]}"
                errors.append(
                    ConfigError(str(f), ref=r.ref, field="metadata.name", message=message)
                )
                continue
            resources[r.key] = r
            sources[r.key] = str(f)
    # The derived resources are context: findings are those of the files' resources.
    extra = derived(resources.values())
    made = {r.key for r in extra}
    findings = [
        f for f in analyze(build_snapshot([*resources.values(), *extra])) if f.key not in made
    ]
    return [{**f.to_dict(), "source": sources.get(f.key)} for f in findings], [
        str(e) for e in errors
    ]


def run(args: argparse.Namespace) -> int:
    import json

    from amimesh.cli import client, render

    out, err = render.console(), render.console(stderr=True)

    def report(findings: list[dict[str, Any]], errors: list[str]) -> int:
        if args.output == "json":
            out.print(json.dumps({"findings": findings, "errors": errors}, indent=2), markup=False)
        else:
            for e in errors:
                render.print_error(err, e)
            out.print(render.findings_view(findings))
        failed = errors or any(f.get("severity") == "Error" for f in findings)
        return 1 if failed else 0

    if args.paths:
        try:
            findings, errors = analyze_paths(args.paths)
        except FileNotFoundError as e:
            render.print_error(err, str(e))
            return 2
        return report(findings, errors)

    def online() -> int:
        with err.status("analyzing the running mesh"):
            body = client.connect(args.mesh).get("/api/v1/analyze")
        return report(body.get("findings", []), [])

    return client.guarded(online)


def derived(written: Iterable[Resource]) -> list[Resource]:
    """What the control plane adds to these resources when it runs them, by the same
    pure functions: Knative revisions' workloads, services and routes, each
    EventListener's Service, the Gateway API's and HTTPProxy's Istio resources. Offline
    analysis then knows the hosts they make (a VirtualService may route to
    `el-NAME` or a Knative route), as the running mesh's does."""
    from amimesh.gatewayapi.convert import convert
    from amimesh.model import httpproxy
    from amimesh.pipelines import listeners
    from amimesh.resources import parse_object
    from amimesh.resources import tekton_triggers as tt
    from amimesh.serving.expand import expand

    written = list(written)
    made: list[dict[str, Any]] = []
    made += expand(written, [], now=0.0).derived
    for r in written:
        if isinstance(r, tt.EventListener):
            made += listeners.listener_resources(r, api="http://127.0.0.1", token_file="")
    made += convert(written, now="1970-01-01T00:00:00Z").derived
    made += httpproxy.expand(written).derived
    parsed = parse_object({"apiVersion": "v1", "kind": "List", "items": made}, "derived")
    keys = {r.key for r in written}
    return [r for r in parsed.resources if r.key not in keys]
