"""What a sync would change, and whether the mesh runs what the repository holds. Pure.

    plan = compare(desired, owned, live, source="gitops:default/guestbook", prune=True)
    plan.synced        # every desired resource in force, as the repository has it
    plan.rows          # one per resource: Synced/OutOfSync, requiresPruning

`owned` are the keys the Application's source holds now; `live` what is in force for
a key and from which source (an `ami apply` over it makes it OutOfSync).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from amimesh.resources.meta import Resource

Key = tuple[str, str, str]
SYNCED, OUT_OF_SYNC, UNKNOWN = "Synced", "OutOfSync", "Unknown"


@dataclass(frozen=True)
class Row:
    key: Key
    group: str
    version: str
    status: str  # Synced or OutOfSync
    action: str  # what a sync does: create, update, unchanged, prune, keep
    requires_pruning: bool = False


@dataclass(frozen=True)
class Plan:
    rows: tuple[Row, ...]
    # What the Application's source holds after the sync: the repository's resources,
    # and, unless pruning, those it no longer has.
    resources: tuple[Resource, ...]

    @property
    def synced(self) -> bool:
        return all(r.status == SYNCED for r in self.rows)

    @property
    def needs_sync(self) -> bool:
        """Whether a sync would change anything (resources kept for want of pruning
        stay OutOfSync, and a sync without prune leaves them)."""
        return any(r.action in ("create", "update", "prune") for r in self.rows)

    @property
    def pruned(self) -> list[Key]:
        return [r.key for r in self.rows if r.action == "prune"]


def compare(
    desired: Sequence[Resource],
    owned: Mapping[Key, Resource],
    live: Mapping[Key, tuple[Resource, str]],
    *,
    source: str,
    prune: bool,
) -> Plan:
    rows: list[Row] = []
    keep: list[Resource] = []
    wanted = {r.key for r in desired}
    for r in sorted(desired, key=lambda r: r.key):
        found = live.get(r.key)
        if found is None:
            status, action = OUT_OF_SYNC, "create"
        elif found == (r, source):
            status, action = SYNCED, "unchanged"
        else:
            status, action = OUT_OF_SYNC, "update"
        group, version = _group_version(r)
        rows.append(Row(r.key, group, version, status, action))
    for key, old in sorted(owned.items()):
        if key in wanted:
            continue
        group, version = _group_version(old)
        rows.append(Row(key, group, version, OUT_OF_SYNC, "prune" if prune else "keep", True))
        if not prune:
            keep.append(old)
    return Plan(tuple(rows), (*desired, *keep))


def _group_version(r: Resource) -> tuple[str, str]:
    group, _, version = r.apiVersion.rpartition("/")
    return group, version
