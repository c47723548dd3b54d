"""`ami validate PATH...`: print every error a user must fix; exit 1 on any."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from amimesh.resources import ConfigError, load_path
from amimesh.resources.files import yaml_files
from amimesh.resources.meta import Resource


def validate_paths(paths: Sequence[Path]) -> tuple[int, list[ConfigError]]:
    """(number of resources that validated, errors) over every YAML file under `paths`,
    then what refers across them to nothing (a Tekton Trigger's binding, template or
    Secret; a Knative Trigger's broker or subscriber, a source's sink)."""
    from amimesh.eventing.expand import reference_problems
    from amimesh.pipelines import triggers

    count = 0
    errors: list[ConfigError] = []
    found: list[tuple[str, Resource]] = []
    for root in paths:
        if not root.exists():
            raise FileNotFoundError(root)
        for file in yaml_files(root) if root.is_dir() else [root]:
            result = load_path(file)
            count += len(result.resources)
            errors += result.errors
            found += [(str(file), r) for r in result.resources]
    file_of = {id(r): f for f, r in found}
    for r, issue in triggers.ref_issues(r for _, r in found):
        field = triggers.field_path(issue.loc)
        errors.append(ConfigError(file_of[id(r)], ref=r.ref, field=field, message=issue.message))
    file_of_ref = {r.ref: f for f, r in found}
    for p in reference_problems(r for _, r in found):
        where = file_of_ref.get(p.ref, "")
        errors.append(ConfigError(where, ref=p.ref, field=p.field, message=p.message))
    return count, errors


def run(paths: Sequence[Path]) -> int:
    out = Console(highlight=False, emoji=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)
    try:
        count, errors = validate_paths(paths)
    except FileNotFoundError as missing:
        err.print(f"[red]error:[/red] no such file or directory: {missing}")
        return 2
    for problem in errors:
        err.print("[red]error:[/red] ", end="")
        err.print(str(problem), markup=False)
    if errors:
        err.print(f"{len(errors)} error(s); {count} resource(s) valid")
        return 1
    out.print(f"{count} resource(s) valid")
    return 0
