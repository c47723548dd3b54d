"""Argo CD Applications against real git repositories (made here with the git CLI):
the control plane's GitOps controller syncs a revision into the store, follows new
commits, keeps the last good revision through a broken one, prunes or keeps what a
commit deletes, self-heals an `ami apply` over its resources, honours a pinned tag and
the directory options; the API and `ami app` show it in Argo CD's words."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils

from amimesh.config.store import API_SOURCE
from amimesh.controlplane.api import make_app
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.model.snapshot import Instance
from amimesh.resources import parse_documents

TOKEN = "api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = test_utils.TestClient[Any, Any]
DEADLINE_S = 60.0  # generous: a busy machine; a passing run takes well under a second
SOURCE = "gitops:default/shop"

WORKLOAD = """\
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: web, labels: {app: web}}
spec: {command: [python3, -m, http.server], ports: [{name: http, port: 8000}]}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8000}]}
"""


def vs(timeout: str = "5s") -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web}}
spec:
  hosts: [web]
  http: [{{route: [{{destination: {{host: web}}}}], timeout: {timeout}}}]
"""


class Repo:
    """A git repository in a temporary directory, changed by commits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        for name, text in files.items():
            target = self.path / name
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


def application(repo: Repo, *, policy: str = "", extra: str = "", name: str = "shop") -> str:
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: {name}}}
spec:
  source:
    repoURL: file://{repo.path}
    path: {extra or "manifests"}
  destination: {{server: https://kubernetes.default.svc, namespace: shop}}
{policy}"""


AUTO = "  syncPolicy: {automated: {}}\n"
PRUNE = "  syncPolicy: {automated: {prune: true}}\n"
HEAL = "  syncPolicy: {automated: {selfHeal: true}}\n"


@pytest.fixture
async def cp(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, Client]]:
    cp = ControlPlane(
        ControlPlaneConfig(state_dir=tmp_path / "state", api_token=TOKEN, gitops_poll_s=0.2)
    )
    (tmp_path / "state").mkdir()
    client = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await client.start_server()
    cp.gitops.watch(asyncio.get_running_loop())
    try:
        yield cp, client
    finally:
        await cp.gitops.close()
        await client.close()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "repo")
    r.commit(
        {"manifests/web.yaml": WORKLOAD + "---\n" + SERVICE, "manifests/vs.yaml": vs()}, "first"
    )
    return r


def apply(cp: ControlPlane, text: str) -> None:
    result = parse_documents(text, "applied.yaml")
    assert result.ok, result.errors
    assert not cp.store.apply(result)


async def until(what: str, check: Callable[[], Any]) -> Any:
    """Poll `check` until it is truthy; fail after a generous deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def status(cp: ControlPlane, name: str = "shop") -> dict[str, Any]:
    found = cp.gitops.status_of(("Application", "default", name))
    assert found is not None
    return found


def vs_timeout(cp: ControlPlane) -> str | None:
    found = cp.store.get(("VirtualService", "shop", "web"))
    if found is None:
        return None
    return str(found.spec.http[0].timeout)  # type: ignore[attr-defined]


async def test_automated_sync_follows_commits_and_keeps_the_last_good_one(
    cp: tuple[ControlPlane, Client], repo: Repo
) -> None:
    control, client = cp
    first = repo.git("rev-parse", "HEAD")
    apply(control, application(repo, policy=AUTO))
    await until("the first sync", lambda: control.store.get(("Service", "shop", "web")))
    assert control.store.source_of(("Workload", "shop", "web")) == SOURCE
    st = await until(
        "Synced", lambda: status(control)["sync"]["status"] == "Synced" and status(control)
    )
    assert st["sync"]["revision"] == first
    assert st["operationState"]["phase"] == "Succeeded"
    assert {r["name"] for r in st["operationState"]["syncResult"]["resources"]} == {"web"}
    # The Workload has no ready instance yet; once it has one, all is Healthy.
    assert st["health"]["status"] == "Progressing"
    control.store.register_instance(Instance("web-1", "web", "shop", {"app": "web"}))
    assert status(control)["health"]["status"] == "Healthy"

    second = repo.commit({"manifests/vs.yaml": vs("7s")}, "longer timeout")
    await until("the new commit", lambda: vs_timeout(control) == "7.0")
    st = await until(
        "status of the second commit",
        lambda: status(control)["sync"]["revision"] == second and status(control),
    )
    assert [h["revision"] for h in st["history"]] == [first, second]

    bad = repo.commit({"manifests/vs.yaml": vs("7s").replace("hosts", "hostz")}, "typo")
    st = await until(
        "the broken commit's error",
        lambda: status(control).get("conditions") and status(control),
    )
    assert st["sync"]["status"] == "Unknown"
    message = st["conditions"][0]["message"]
    assert f"{bad[:7]}:manifests/vs.yaml" in message and "spec.hostz" in message
    await until(
        "the failed operation", lambda: status(control)["operationState"]["phase"] == "Failed"
    )
    assert vs_timeout(control) == "7.0"  # the last good revision still serves
    assert any("spec.hostz" in str(e) for e in control.store.errors())

    fixed = repo.commit({"manifests/vs.yaml": vs("9s")}, "fixed")
    await until("the fix", lambda: vs_timeout(control) == "9.0")
    await until("no errors", lambda: not control.store.errors())
    assert status(control)["sync"]["revision"] == fixed

    resp = await client.get("/api/v1/gitops/applications", headers=AUTH)
    items = (await resp.json())["items"]
    assert [(i["metadata"]["name"], i["status"]["sync"]["status"]) for i in items] == [
        ("shop", "Synced")
    ]


async def test_prune_removes_and_without_it_resources_stay_out_of_sync(
    cp: tuple[ControlPlane, Client], repo: Repo
) -> None:
    control, client = cp
    apply(control, application(repo, policy=AUTO))
    await until("the first sync", lambda: vs_timeout(control))
    repo.commit({"manifests/vs.yaml": None}, "no more routes")
    await until(
        "the deletion noticed",
        lambda: any(r.get("requiresPruning") for r in status(control)["resources"]),
    )
    assert vs_timeout(control) == "5.0"  # kept: nothing prunes it
    st = status(control)
    assert st["sync"]["status"] == "OutOfSync"
    pruned = [r for r in st["resources"] if r.get("requiresPruning")]
    assert [(r["kind"], r["name"], r["status"]) for r in pruned] == [
        ("VirtualService", "web", "OutOfSync")
    ]

    # A manual sync with --prune removes it; the Application is Synced again.
    resp = await client.post(
        "/api/v1/gitops/applications/default/shop/sync", json={"prune": True}, headers=AUTH
    )
    assert resp.status == 200, await resp.text()
    result = (await resp.json())["operationState"]["syncResult"]["resources"]
    assert [(r["kind"], r["status"]) for r in result] == [("VirtualService", "Pruned")]
    assert vs_timeout(control) is None
    assert status(control)["sync"]["status"] == "Synced"

    # With automated prune, a deleted file's resources go by themselves.
    apply(control, application(repo, policy=PRUNE))
    repo.commit({"manifests/web.yaml": WORKLOAD}, "no more service")
    await until("the prune", lambda: control.store.get(("Service", "shop", "web")) is None)
    assert control.store.get(("Workload", "shop", "web")) is not None


async def test_self_heal_puts_back_a_hand_made_change(
    cp: tuple[ControlPlane, Client], repo: Repo
) -> None:
    control, _ = cp
    apply(control, application(repo, policy=AUTO))
    await until("the first sync", lambda: vs_timeout(control))
    # Without selfHeal an `ami apply` over the revision stays, OutOfSync.
    apply(control, vs("1s").replace("{name: web}", "{name: web, namespace: shop}"))
    assert vs_timeout(control) == "1.0"
    await until("OutOfSync", lambda: status(control)["sync"]["status"] == "OutOfSync")
    await asyncio.sleep(0.5)  # a few polls: nothing puts it back
    assert vs_timeout(control) == "1.0"

    apply(control, application(repo, policy=HEAL))
    await until("the heal", lambda: vs_timeout(control) == "5.0")
    key = ("VirtualService", "shop", "web")
    assert control.store.source_of(key) == SOURCE
    assert key not in {r.key for r in control.store.applied()}
    apply(control, vs("2s").replace("{name: web}", "{name: web, namespace: shop}"))
    await until("the second heal", lambda: vs_timeout(control) == "5.0")
    await until("Synced", lambda: status(control)["sync"]["status"] == "Synced")


async def test_a_pinned_tag_ignores_newer_commits_and_directory_options_apply(
    cp: tuple[ControlPlane, Client], repo: Repo
) -> None:
    control, _ = cp
    repo.git("tag", "v1")
    repo.commit({"manifests/vs.yaml": vs("8s")}, "after the tag")
    pinned = application(repo, policy=AUTO).replace(
        "    path: manifests\n", "    path: manifests\n    targetRevision: v1\n"
    )
    apply(control, pinned)
    await until("the tagged sync", lambda: vs_timeout(control) == "5.0")
    await asyncio.sleep(0.5)
    assert vs_timeout(control) == "5.0"

    # recurse, include and exclude: only the chosen files are read.
    repo.commit(
        {
            "tree/top.yaml": SERVICE.replace("name: web", "name: top"),
            "tree/a/one.yaml": SERVICE.replace("name: web", "name: one"),
            "tree/b/two.yaml": SERVICE.replace("name: web", "name: two"),
            "tree/b/skip.yml": SERVICE.replace("name: web", "name: skip"),
            "tree/notes.txt": "not a manifest",
        },
        "a tree",
    )
    options = "    directory: {recurse: true, include: '*.yaml', exclude: 'a/*'}\n"
    tree = application(repo, policy=AUTO, extra="tree", name="tree").replace(
        "    path: tree\n", "    path: tree\n" + options
    )
    apply(control, tree)

    def names() -> set[str]:
        return {k[2] for k in control.store.source_resources("gitops:default/tree")}

    await until("the tree's sync", lambda: names())
    assert names() == {"top", "two"}


async def test_manual_sync_diff_and_history_through_the_cli(
    cp: tuple[ControlPlane, Client],
    repo: Repo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    control, client = cp
    from amimesh.cli import client as cli_client
    from amimesh.cli.main import main

    url = str(client.make_url("")).rstrip("/")
    monkeypatch.setattr(cli_client, "connect", lambda *_a, **_k: cli_client.MeshClient(url, TOKEN))
    monkeypatch.setenv("COLUMNS", "200")

    async def ami(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(main, list(argv))
        return code, capsys.readouterr().out

    apply(control, application(repo))  # manual: nothing syncs by itself
    await until("the comparison", lambda: status(control)["sync"]["status"] == "OutOfSync")
    assert control.store.get(("Service", "shop", "web")) is None

    code, out = await ami("app", "list")
    assert code == 0
    assert "STATUS" in out and "HEALTH" in out and "OutOfSync" in out and "Missing" in out
    code, out = await ami("app", "diff", "shop")
    assert code == 1 and "===== VirtualService shop/web (create)" in out and "+  hosts:" in out
    code, out = await ami("app", "sync", "shop")
    assert code == 0 and "Succeeded" in out
    assert control.store.source_of(("Service", "shop", "web")) == SOURCE
    code, out = await ami("app", "diff", "shop")
    assert code == 0 and out == ""

    first = repo.git("rev-parse", "HEAD")
    repo.commit({"manifests/vs.yaml": vs("3s")}, "faster")
    code, out = await ami("app", "sync", "shop", "--revision", first[:12])
    assert code == 0 and vs_timeout(control) == "5.0"
    code, out = await ami("app", "sync", "shop")
    assert code == 0 and vs_timeout(control) == "3.0"
    code, out = await ami("app", "history", "shop")
    assert code == 0 and out.count(first) == 2
    code, out = await ami("app", "get", "shop", "--refresh")
    assert code == 0 and "Sync Status:" in out and "Synced to HEAD" in out
    code, out = await ami("app", "get", "shop", "-o", "json")
    assert json.loads(out)["status"]["sync"]["status"] == "Synced"
    code, _ = await ami("app", "sync", "shop", "--revision=--upload-pack=touch")
    assert code != 0
    code, _ = await ami("app", "get", "nope")
    assert code == 1


async def test_restart_brings_back_the_synced_revision(tmp_path: Path, repo: Repo) -> None:
    state = tmp_path / "state"
    state.mkdir()
    app = application(repo)
    cp = ControlPlane(ControlPlaneConfig(state_dir=state, gitops_poll_s=0.2))
    apply(cp, app)
    cp.gitops.watch(asyncio.get_running_loop())
    try:
        op = await cp.gitops.sync("default", "shop")
        assert op["phase"] == "Succeeded"
        repo.commit({"manifests/vs.yaml": vs("4s")}, "not synced: manual")
    finally:
        await cp.gitops.close()
    assert (state / "gitops.json").stat().st_mode & 0o777 == 0o600

    # Started again with the repository out of reach: what was synced serves at once.
    repo.path.rename(tmp_path / "elsewhere")
    again = ControlPlane(ControlPlaneConfig(state_dir=state, gitops_poll_s=0.2))
    apply(again, app)
    again.gitops.load()
    assert vs_timeout(again) == "5.0"
    assert again.store.source_of(("Workload", "shop", "web")) == SOURCE
    again.gitops.watch(asyncio.get_running_loop())
    try:
        st = await until("the unreachable repository", lambda: status(again).get("conditions"))
        assert "repository" in st[0]["message"]
        assert vs_timeout(again) == "5.0"
        assert len(status(again)["history"]) == 1
    finally:
        await again.gitops.close()


async def test_deleting_an_application_keeps_or_deletes_its_resources(
    cp: tuple[ControlPlane, Client], repo: Repo
) -> None:
    control, _ = cp
    apply(control, application(repo, policy=AUTO))
    await until("the first sync", lambda: vs_timeout(control))
    # Without Argo CD's resources finalizer the resources stay, nobody's to sync.
    assert control.store.delete([("Application", "default", "shop")])
    await until("the source gone", lambda: SOURCE not in control.store.sources())
    assert vs_timeout(control) == "5.0"
    assert control.store.source_of(("VirtualService", "shop", "web")) == API_SOURCE

    control.store.delete([r.key for r in control.store.applied()])
    cascading = application(repo, policy=AUTO).replace(
        "metadata: {name: shop}",
        "metadata: {name: shop, finalizers: [resources-finalizer.argocd.argoproj.io]}",
    )
    apply(control, cascading)
    await until("the second sync", lambda: vs_timeout(control))
    assert control.store.delete([("Application", "default", "shop")])
    await until("the resources gone with it", lambda: vs_timeout(control) is None)
    assert control.store.resources() == []


async def test_a_tree_past_the_bounds_is_refused_before_it_is_read(
    cp: tuple[ControlPlane, Client], repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amimesh.gitops import manifests

    control, _ = cp
    monkeypatch.setattr(manifests, "MAX_FILES", 1)
    apply(control, application(repo, policy=AUTO))
    st = await until("the refusal", lambda: status(control).get("conditions") and status(control))
    assert "more than 1 manifest files" in st["conditions"][0]["message"]
    assert st["sync"]["status"] == "Unknown"
    assert control.store.resources() == [control.store.get(("Application", "default", "shop"))]


def test_the_mirror_refuses_options_and_reads_only_through_a_commit(
    repo: Repo, tmp_path: Path
) -> None:
    from amimesh.gitops.repo import GitError, Mirror

    mirror = Mirror(str(repo.path), tmp_path / "mirrors")
    mirror.fetch()
    head = repo.git("rev-parse", "HEAD")
    assert mirror.resolve("main") == mirror.resolve("HEAD") == head
    for bad in ("-h", "--output=/tmp/x", ""):
        with pytest.raises(GitError):
            mirror.resolve(bad)
    with pytest.raises(GitError):
        mirror.resolve("no-such-branch")
    with pytest.raises(GitError):
        mirror.tree("--help", "manifests", recurse=False)
    with pytest.raises(GitError, match="does not exist"):
        mirror.tree(head, "nowhere", recurse=False)
    entries = mirror.tree(head, "manifests", recurse=False)
    assert sorted(e.path for e in entries) == ["vs.yaml", "web.yaml"]
    assert mirror.read([e.oid for e in entries if e.path == "vs.yaml"]) == [vs().encode()]


def test_the_control_plane_knows_where_gitops_keeps_its_state() -> None:
    from amimesh.controlplane import gitops, server

    assert server.GITOPS_STATE == gitops.STATE_FILE
