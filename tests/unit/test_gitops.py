"""Argo CD Applications, the pure parts: Argo CD's glob semantics, which files of a
tree are manifests, the Application's validation (file, resource, field), what a sync
would change, and health."""

from __future__ import annotations

import pytest

from amimesh.gitops import compare, health, manifests
from amimesh.gitops.manifests import Entry
from amimesh.model.snapshot import Instance
from amimesh.resources import parse_documents
from amimesh.resources.argocd import Directory
from amimesh.resources.globs import GlobError, compile_glob, matches

APP = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: guestbook}}
spec:
  source:
    repoURL: {repo}
    targetRevision: {rev}
    path: {path}
  destination: {{server: https://kubernetes.default.svc, namespace: shop}}
"""


@pytest.mark.parametrize(
    ("pattern", "path", "want"),
    [
        ("*.yaml", "vs.yaml", True),
        ("*.yaml", "sub/vs.yaml", True),  # no separator: `*` crosses `/`
        ("*.yaml", "vs.yml", False),
        ("{*.yml,*.yaml}", "a.yml", True),
        ("{config.json,env-usw2/*}", "env-usw2/cm.yaml", True),
        ("{config.json,env-usw2/*}", "env-use2/cm.yaml", False),
        ("some-directory/*", "some-directory/x/y.yaml", True),
        ("?.yaml", "a.yaml", True),
        ("[ab].yaml", "c.yaml", False),
        ("[!ab].yaml", "c.yaml", True),
        ("[a-c]x.yaml", "bx.yaml", True),
        ("{a,{b,c}}.yaml", "c.yaml", True),
        ("a\\*.yaml", "a*.yaml", True),
        ("a\\*.yaml", "ab.yaml", False),
        ("x.yaml", "x.yaml", True),
        ("x.yaml", "dir/x.yaml", False),
    ],
)
def test_globs_match_as_argo_cd_does(pattern: str, path: str, want: bool) -> None:
    assert matches(pattern, path) is want


@pytest.mark.parametrize("pattern", ["{a,b", "[ab", "a\\", "[]", "[z-a]"])
def test_a_broken_glob_is_an_error(pattern: str) -> None:
    with pytest.raises(GlobError):
        compile_glob(pattern)


def _entries(*paths: str) -> list[Entry]:
    return [Entry(p, f"{i:040x}", 10, "100644") for i, p in enumerate(paths)]


TREE = _entries(
    "deployment.yaml", "config.json", "notes.txt", "env-use2/cm.yaml", "env-usw2/cm.yaml"
)


def _select(directory: Directory | None) -> list[str]:
    chosen = manifests.select(TREE, directory)
    assert not isinstance(chosen, manifests.Refused)
    return [e.path for e in chosen]


def test_only_the_paths_own_files_unless_recurse() -> None:
    assert _select(None) == ["config.json", "deployment.yaml"]
    assert _select(Directory(recurse=True)) == [
        "config.json",
        "deployment.yaml",
        "env-use2/cm.yaml",
        "env-usw2/cm.yaml",
    ]


def test_include_and_exclude_together() -> None:
    # Argo CD's own example: every .yaml but config.json and env-usw2.
    d = Directory(recurse=True, include="*.yaml", exclude="{config.json,env-usw2/*}")
    assert _select(d) == ["deployment.yaml", "env-use2/cm.yaml"]


def test_links_and_too_many_files_are_refused_before_reading() -> None:
    link = Entry("link.yaml", "0" * 40, 10, "120000")
    assert manifests.select([link], None) == []
    many = _entries(*(f"{i}.yaml" for i in range(manifests.MAX_FILES + 1)))
    assert isinstance(manifests.select(many, None), manifests.Refused)
    big = [Entry("a.yaml", "0" * 40, manifests.MAX_TOTAL_BYTES + 1, "100644")]
    refused = manifests.select(big, None)
    assert isinstance(refused, manifests.Refused) and "larger" in refused.message


def test_documents_without_a_namespace_get_the_destinations() -> None:
    docs = b"""\
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: web}
spec: {command: [python3, -m, http.server]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: other}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8000}]}
"""
    result = manifests.parse(
        "abcdef1234", "web", [(Entry("a.yaml", "x", 1, "100644"), docs)], "shop"
    )
    assert result.ok, result.errors
    assert sorted(r.ref for r in result.resources) == ["Service/other/web", "Workload/shop/web"]


def test_errors_name_the_commit_file_and_field() -> None:
    bad = b"apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: x}]}\n"
    result = manifests.parse("abcdef1234", "web", [(Entry("svc.yaml", "x", 1, "100644"), bad)])
    assert not result.ok
    e = result.errors[0]
    assert e.file == "abcdef1:web/svc.yaml"
    assert e.field.startswith("spec.ports[0].port")


@pytest.mark.parametrize(
    ("repo", "rev", "path", "field"),
    [
        ("/srv/repo", "--upload-pack=x", ".", "spec.source.targetRevision"),
        ("/srv/repo", "a..b", ".", "spec.source.targetRevision"),
        ("git@github.com:org/r.git", "HEAD", ".", "spec.source.repoURL"),
        ("ssh://git@github.com/org/r.git", "HEAD", ".", "spec.source.repoURL"),
        ("https://user:pw@example.com/r.git", "HEAD", ".", "spec.source.repoURL"),
        ("https:///r.git", "HEAD", ".", "spec.source.repoURL"),
        ("ext::sh -c touch% /tmp/pwned", "HEAD", ".", "spec.source.repoURL"),
        ("file://relative", "HEAD", ".", "spec.source.repoURL"),
        ("/srv/repo", "HEAD", "../up", "spec.source.path"),
        ("/srv/repo", "HEAD", "/abs", "spec.source.path"),
    ],
)
def test_application_validation(repo: str, rev: str, path: str, field: str) -> None:
    result = parse_documents(APP.format(repo=repo, rev=rev, path=path), "app.yaml")
    assert not result.ok
    assert [(e.file, e.ref, e.field) for e in result.errors] == [
        ("app.yaml", "Application/default/guestbook", field)
    ]


def test_a_public_remote_repository_is_taken() -> None:
    for repo in ("https://github.com/argoproj/argocd-example-apps.git", "http://127.0.0.1:8/r"):
        result = parse_documents(APP.format(repo=repo, rev="HEAD", path="guestbook"), "a.yaml")
        assert result.ok, result.errors


def test_unsupported_fields_and_destinations_say_so() -> None:
    text = APP.format(repo="file:///srv/repo", rev="main", path="web")
    ok = parse_documents(text, "app.yaml")
    assert ok.ok, ok.errors
    helm = text.replace("    path: web\n", "    path: web\n    helm: {}\n")
    assert [e.field for e in parse_documents(helm, "a.yaml").errors] == ["spec.source.helm"]
    remote = text.replace("https://kubernetes.default.svc", "https://prod:6443")
    assert [e.field for e in parse_documents(remote, "a.yaml").errors] == [
        "spec.destination.server"
    ]
    option = text + "  syncPolicy: {syncOptions: [Replace=true]}\n"
    assert [e.field for e in parse_documents(option, "a.yaml").errors] == [
        "spec.syncPolicy.syncOptions[0]"
    ]
    glob = text.replace("    path: web\n", "    path: web\n    directory: {include: '{a'}\n")
    assert [e.field for e in parse_documents(glob, "a.yaml").errors] == [
        "spec.source.directory.include"
    ]


SVC = (
    "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n"
    "spec: {{ports: [{{port: {port}}}]}}\n"
)


def _svc(name: str, port: int = 80) -> object:
    return parse_documents(SVC.format(name=name, port=port), "x").resources[0]


def test_compare_says_what_a_sync_changes() -> None:
    a, b, c = _svc("a"), _svc("b"), _svc("c")
    a2 = _svc("a", 81)
    src = "gitops:default/app"
    owned = {r.key: r for r in (a, c)}  # type: ignore[attr-defined]
    live = {a.key: (a2, "api"), c.key: (c, src)}  # type: ignore[attr-defined]
    plan = compare.compare([a, b], owned, live, source=src, prune=False)  # type: ignore[list-item]
    actions = {r.key[2]: (r.status, r.action, r.requires_pruning) for r in plan.rows}
    assert actions == {
        "a": ("OutOfSync", "update", False),
        "b": ("OutOfSync", "create", False),
        "c": ("OutOfSync", "keep", True),
    }
    assert c in plan.resources and plan.needs_sync
    pruning = compare.compare([a, b], owned, live, source=src, prune=True)  # type: ignore[list-item]
    assert pruning.pruned == [c.key] and c not in pruning.resources  # type: ignore[attr-defined]
    kept_only = compare.compare([], {c.key: c}, live, source=src, prune=False)  # type: ignore[attr-defined]
    assert not kept_only.needs_sync and not kept_only.synced


def test_health() -> None:
    wl = parse_documents(
        "apiVersion: ami.dev/v1alpha1\nkind: Workload\nmetadata: {name: w}\n"
        "spec: {command: [x], replicas: 2}\n",
        "x",
    ).resources[0]
    assert health.resource_health(None, 0, None) == "Missing"
    assert health.resource_health(wl, 1, None) == "Progressing"
    assert health.resource_health(wl, 2, None) == "Healthy"
    assert health.resource_health(wl, 1, None, failing_instances=1) == "Degraded"
    assert health.resource_health(wl, 2, None, failing_instances=1) == "Healthy"
    ksvc = parse_documents(
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: k}\n"
        "spec: {template: {spec: {containers: [{image: x, command: [x]}]}}}\n",
        "x",
    ).resources[0]
    for ready, want in (("True", "Healthy"), ("False", "Degraded"), ("Unknown", "Progressing")):
        knative = {"conditions": [{"type": "Ready", "status": ready}]}
        assert health.resource_health(ksvc, 0, knative) == want
    assert health.resource_health(ksvc, 0, None) == "Progressing"
    assert health.resource_health(_svc("a"), 0, None) == "Healthy"  # type: ignore[arg-type]
    assert health.worst(["Healthy", "Missing", "Progressing"]) == "Missing"
    assert health.worst([]) == "Healthy"
    assert Instance("i", "w").ready
