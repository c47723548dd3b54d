"""`ami validate PATH...`: print every error a user must fix; exit 1 on any."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from amimesh.resources import ConfigError, load_path


def validate_paths(paths: Sequence[Path]) -> tuple[int, list[ConfigError]]:
    """(number of resources that validated, errors) over every YAML file under `paths`."""
    from amimesh.eventing.expand import reference_problems

    count = 0
    errors: list[ConfigError] = []
    where: dict[str, str] = {}
    resources = []
    for root in paths:
        if not root.exists():
            raise FileNotFoundError(root)
        result = load_path(root)
        count += len(result.resources)
        errors += result.errors
        resources += result.resources
        where.update((r.ref, str(root)) for r in result.resources)
    # What one document cannot know alone: a Trigger's broker, its subscriber.
    for p in reference_problems(resources):
        errors.append(
            ConfigError(where.get(p.ref, ""), ref=p.ref, field=p.field, message=p.message)
        )
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
