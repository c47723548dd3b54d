"""A repository over HTTP (a real git server: `git http-backend`), and the bounds of a
clone: the transports git may use, the size of a mirror."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from amimesh.gitops import repo, repocreds
from amimesh.gitops.repo import GitError, Mirror
from amimesh.gitops.repocreds import Credentials
from tests.gitserver import serving
from tests.unit.test_gitops_controller import Repo


def git(cwd: Path, *args: str) -> str:
    repo = Repo.__new__(Repo)  # a Repo's git, run in `cwd`
    repo.path = cwd
    return repo.git(*args)


def published(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, str]:
    """A work tree with one commit of `files`, and a bare copy of it under
    tmp/served/shop.git; the commit."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    for name, data in files.items():
        (work / name).write_bytes(data)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "first")
    served = tmp_path / "served"
    served.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(work), str(served / "shop.git"))
    return served, git(work, "rev-parse", "HEAD")


def test_a_repository_is_fetched_over_http(tmp_path: Path) -> None:
    served, first = published(tmp_path, {"svc.yaml": b"kind: Service\n"})
    with serving(served) as base:
        url = f"{base}/shop.git"
        assert repo.is_remote(url)
        mirror = Mirror(url, tmp_path / "mirrors")
        mirror.fetch()
        assert mirror.resolve("main") == first
        # A new commit pushed to the server arrives with the next fetch.
        work = tmp_path / "work"
        (work / "svc.yaml").write_text("kind: Service # 2\n")
        git(work, "commit", "-qam", "second")
        git(work, "push", "-q", str(served / "shop.git"), "main")
        mirror.fetch()
        assert mirror.resolve("main") == git(work, "rev-parse", "HEAD") != first
        (entry,) = mirror.tree(mirror.resolve("main"), ".", recurse=False)
        assert mirror.read([entry.oid]) == [b"kind: Service # 2\n"]


def test_a_repository_over_the_size_bound_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    served, _ = published(tmp_path, {"big.bin": os.urandom(3 * 1024 * 1024)})
    monkeypatch.setattr(repo, "MAX_REPO_BYTES", 1024 * 1024)
    with serving(served) as base:
        mirror = Mirror(f"{base}/shop.git", tmp_path / "mirrors")
        with pytest.raises(GitError, match="over 1048576 bytes"):
            mirror.fetch()
    # Nothing half-cloned is kept.
    assert not mirror.path.exists()
    assert [p.name for p in (tmp_path / "mirrors").iterdir()] == []


def test_git_takes_no_other_transport(tmp_path: Path) -> None:
    """ssh and git:// would be tried by git's own default; `ext::` (a command) is
    refused by it too. Here none is even tried."""
    for url in ("ssh://127.0.0.1:1/shop.git", "git://127.0.0.1:1/shop.git"):
        with pytest.raises(GitError, match="not allowed"):
            Mirror(url, tmp_path / "mirrors").fetch()
    touched = tmp_path / "touched"
    with pytest.raises(GitError, match="not allowed"):
        Mirror(f"ext::sh -c touch% {touched}", tmp_path / "mirrors").fetch()
    assert not touched.exists()


async def test_an_application_of_a_remote_repository_syncs_and_a_push_refreshes_it(
    tmp_path: Path,
) -> None:
    """Over HTTP from a real git server: the Application syncs; the poll then leaves the
    remote repository alone for `remote_poll_s` (Argo CD's 3 minutes), and a push
    webhook brings a new commit at once."""
    import asyncio

    from aiohttp import test_utils

    from amimesh.controlplane.api import make_app
    from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
    from tests.unit.test_gitops_controller import (
        AUTH,
        AUTO,
        SERVICE,
        TOKEN,
        WORKLOAD,
        apply,
        until,
        vs,
        vs_timeout,
    )
    from tests.unit.test_gitops_refresh import push_body

    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "manifests").mkdir()
    (work / "manifests" / "web.yaml").write_text(WORKLOAD + "---\n" + SERVICE)
    (work / "manifests" / "vs.yaml").write_text(vs())
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "first")
    served = tmp_path / "served"
    served.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(work), str(served / "shop.git"))
    state = tmp_path / "state"
    state.mkdir()
    cp = ControlPlane(ControlPlaneConfig(state_dir=state, api_token=TOKEN, gitops_poll_s=0.1))
    client = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await client.start_server()
    cp.gitops.watch(asyncio.get_running_loop())
    fetches: list[str] = []
    fetch = Mirror.fetch

    def counted(self: Mirror, credentials: Credentials | None = None) -> None:
        fetches.append(self.url)
        fetch(self, credentials)

    # The poll's rounds that left the repository alone.
    skipped: list[bool] = []
    polled_lately = cp.gitops._polled_lately

    def counting(app: Any) -> bool:
        fresh = polled_lately(app)
        if fresh:
            skipped.append(True)
        return fresh

    cp.gitops._polled_lately = counting  # type: ignore[method-assign]

    try:
        with serving(served) as base:
            url = f"{base}/shop.git"
            Mirror.fetch = counted  # type: ignore[method-assign]
            apply(
                cp,
                f"apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: shop}}\n"
                f"spec:\n  source: {{repoURL: '{url}', path: manifests}}\n"
                "  destination: {server: https://kubernetes.default.svc, namespace: shop}\n" + AUTO,
            )
            await until("the first sync", lambda: vs_timeout(cp) == "5.0")
            # Ten polls later, still the one fetch.
            await until("ten rounds of the poll", lambda: len(skipped) >= 10)
            assert len(fetches) == 1
            (work / "manifests" / "vs.yaml").write_text(vs("7s"))
            git(work, "commit", "-qam", "longer")
            git(work, "push", "-q", str(served / "shop.git"), "main")
            hook = {"X-GitHub-Event": "push", "Content-Type": "application/json", **AUTH}
            resp = await client.post("/api/webhook", data=push_body(url), headers=hook)
            assert resp.status == 200 and (await resp.json())["refreshed"] == ["default/shop"]
            assert vs_timeout(cp) == "7.0"
    finally:
        Mirror.fetch = fetch  # type: ignore[method-assign]
        await cp.gitops.close()
        await client.close()


def test_a_private_repository_is_fetched_with_its_credentials(tmp_path: Path) -> None:
    served, first = published(tmp_path, {"svc.yaml": b"kind: Service\n"})
    with serving(served, auth=("deploy", "t0k3n")) as base:
        url = f"{base}/shop.git"
        with pytest.raises(GitError, match="Username"):  # asked, and nothing answers
            Mirror(url, tmp_path / "none").fetch()
        with pytest.raises(GitError):
            Mirror(url, tmp_path / "wrong").fetch(Credentials("deploy", "nope"))
        mirror = Mirror(url, tmp_path / "mirrors")
        mirror.fetch(Credentials("deploy", "t0k3n"))
        assert mirror.resolve("main") == first
        mirror.fetch(Credentials("deploy", "t0k3n"))  # a fetch asks again
    # The password is kept nowhere: not in the mirror's config, not in its files.
    for path in mirror.path.rglob("*"):
        if path.is_file():
            assert b"t0k3n" not in path.read_bytes(), path


def secret(name: str, kind: str, url: str, **data: str) -> str:
    fields = ", ".join(f"{k}: {v!r}" for k, v in {"url": url, **data}.items())
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: argocd, "
        f"labels: {{argocd.argoproj.io/secret-type: {kind}}}}}\nstringData: {{{fields}}}\n"
    )


def test_which_secret_gives_a_repositorys_credentials() -> None:
    from amimesh.resources import parse_documents

    texts = [
        secret("org", "repo-creds", "https://git.example.com/org", username="o", password="1"),
        secret("team", "repo-creds", "https://git.example.com/org/team", password="2"),
        secret("one", "repository", "https://git.example.com/org/team/app.git", password="3"),
        secret("ssh", "repository", "https://git.example.com/org/keys", sshPrivateKey="k"),
        secret("elsewhere", "repository", "https://other.example.com/r", password="4").replace(
            "namespace: argocd", "namespace: default"
        ),
    ]
    resources = parse_documents("---\n".join(texts), "s.yaml").resources

    def found(url: str) -> object:
        return repocreds.find(url, resources)

    # The repository's own Secret first (Argo CD's normalizing: case, `.git`, `/`).
    assert found("https://GIT.example.com/org/team/app/") == Credentials("git", "3")
    # Else the longest template whose URL is a prefix of it, on a path boundary.
    assert found("https://git.example.com/org/team/other") == Credentials("git", "2")
    assert found("https://git.example.com/org/x.git") == Credentials("o", "1")
    assert found("https://git.example.com/organic/x") is None
    # Only Argo CD's namespace; an ssh key is not used, and says so.
    assert found("https://other.example.com/r") is None
    unsupported = found("https://git.example.com/org/keys")
    assert isinstance(unsupported, repocreds.Unsupported)
    assert "sshPrivateKey" in unsupported.message
    assert "3" not in repr(found("https://git.example.com/org/team/app"))


async def test_an_application_of_a_private_repository_syncs_with_its_secret(
    tmp_path: Path,
) -> None:
    import asyncio

    from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
    from tests.unit.test_gitops_controller import (
        AUTO,
        SERVICE,
        TOKEN,
        WORKLOAD,
        apply,
        status,
        until,
        vs,
        vs_timeout,
    )

    files = {"web.yaml": (WORKLOAD + "---\n" + SERVICE).encode(), "vs.yaml": vs().encode()}
    served, _ = published(tmp_path, files)
    state = tmp_path / "state"
    state.mkdir()
    cp = ControlPlane(ControlPlaneConfig(state_dir=state, api_token=TOKEN, gitops_poll_s=0.1))
    cp.gitops.watch(asyncio.get_running_loop())
    try:
        with serving(served, auth=("deploy", "t0k3n")) as base:
            url = f"{base}/shop.git"
            apply(
                cp,
                f"apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: shop}}\n"
                f"spec:\n  source: {{repoURL: '{url}', path: .}}\n"
                "  destination: {server: https://kubernetes.default.svc, namespace: shop}\n" + AUTO,
            )

            def condition() -> str:
                conditions = status(cp).get("conditions") or []
                return str(conditions[0]["message"]) if conditions else ""

            assert "Username" in await until("the fetch refused", condition)
            assert vs_timeout(cp) is None
            # Argo CD's repository Secret: the next fetch has its credentials.
            apply(cp, secret("shop-repo", "repository", url, username="deploy", password="t0k3n"))
            await cp.gitops.refresh("default", "shop")
            await until("the sync", lambda: vs_timeout(cp) == "5.0")
            assert "t0k3n" not in json.dumps(status(cp))
    finally:
        await cp.gitops.close()
