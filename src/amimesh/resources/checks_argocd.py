"""Argo CD Application checks beyond the schema (as Argo CD's own validation makes them,
where they apply to one machine): a source Ami can fetch and render, a revision and a
path that cannot be read as options or leave the repository, globs that compile, the
mesh itself as the destination, sync options Ami knows. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from amimesh.resources import argocd
from amimesh.resources.errors import Issue
from amimesh.resources.globs import GlobError, compile_glob

# A branch, a tag or a commit: what git names refs with, never an option or a range.
_REVISION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}$")
# Sync options that mean something here, or nothing to one machine (accepted, no-op).
SYNC_OPTIONS = {
    "CreateNamespace": "namespaces need no creating in Ami",
    "PruneLast": "a sync changes the store at once; pruning is part of that change",
    "ApplyOutOfSyncOnly": "only changed resources are ever rewritten",
    "Validate": "Ami always validates",
}


def check_application(app: argocd.Application) -> Iterator[Issue]:
    spec = app.spec
    if spec.source is None:
        yield Issue(("spec", "source"), "is required: the repository to sync from")
        return
    yield from _source(spec.source)
    dest = spec.destination
    if dest.server not in ("", argocd.IN_CLUSTER_SERVER):
        yield Issue(
            ("spec", "destination", "server"),
            f"Ami syncs into its own mesh: {argocd.IN_CLUSTER_SERVER} or none",
        )
    if dest.name not in ("", argocd.IN_CLUSTER_NAME):
        yield Issue(
            ("spec", "destination", "name"),
            f"Ami syncs into its own mesh: {argocd.IN_CLUSTER_NAME} or none",
        )
    if dest.namespace and not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", dest.namespace):
        yield Issue(("spec", "destination", "namespace"), "must be a DNS label")
    policy = spec.syncPolicy
    for i, option in enumerate(policy.syncOptions if policy else []):
        name, eq, value = option.partition("=")
        if name not in SYNC_OPTIONS or not eq or value not in ("true", "false"):
            known = ", ".join(f"{k}=true|false" for k in SYNC_OPTIONS)
            yield Issue(
                ("spec", "syncPolicy", "syncOptions", i),
                f"{option!r} is not supported by Ami yet; it knows {known}",
            )


def _source(src: argocd.ApplicationSource) -> Iterator[Issue]:
    url = src.repoURL
    if url.startswith("file://"):
        if not url[len("file://") :].startswith("/"):
            yield Issue(("spec", "source", "repoURL"), "a file:// URL needs an absolute path")
    elif url.startswith(("https://", "http://")):
        try:
            split = urlsplit(url)
            host, has_user = split.hostname, split.username is not None
            split.port  # noqa: B018  # raises on a port that is no number
        except ValueError:
            host, has_user = None, False
        if not host:
            yield Issue(("spec", "source", "repoURL"), "must be a URL with a host")
        elif has_user:
            yield Issue(
                ("spec", "source", "repoURL"),
                "must hold no credentials (they would be shown with the Application): put "
                "them in a repository Secret (argocd.argoproj.io/secret-type: repository)",
            )
    elif not url.startswith("/"):
        yield Issue(
            ("spec", "source", "repoURL"),
            "Ami fetches a public repository over https:// or http://, or a local one (an "
            "absolute path or a file:// URL); ssh and git:// are not supported yet",
        )
    if "\x00" in url or "\n" in url:
        yield Issue(("spec", "source", "repoURL"), "must be one line")
    if not _REVISION.match(src.targetRevision) or ".." in src.targetRevision:
        yield Issue(
            ("spec", "source", "targetRevision"),
            "must be a branch, a tag or a commit (letters, digits, . _ / -; "
            "not starting with - or holding ..)",
        )
    parts = [p for p in src.path.split("/") if p not in ("", ".")]
    if src.path.startswith("/") or ".." in parts or "\x00" in src.path:
        yield Issue(("spec", "source", "path"), "must be a path inside the repository")
    if src.directory is not None:
        for name in ("include", "exclude"):
            pattern = getattr(src.directory, name)
            try:
                compile_glob(pattern)
            except GlobError as err:
                yield Issue(("spec", "source", "directory", name), f"not a glob: {err}")
