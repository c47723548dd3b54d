"""A refresh faster than the poll, against real git repositories: a local
repository's refs are watched, so a commit (or a push into a bare repository) syncs
with the poll an hour away; Argo CD's `/api/webhook` refreshes the Applications a
GitHub push concerns, signed by `argocd-secret`'s `webhook.github.secret` or sent
with the API's token. The push payload's matching rules are checked directly."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils

from amimesh.controlplane.api import make_app
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.gitops import refwatch
from amimesh.gitops import webhook as hooks
from tests.unit.test_gitops_controller import (
    AUTH,
    AUTO,
    TOKEN,
    Repo,
    application,
    apply,
    until,
    vs,
    vs_timeout,
)

Client = test_utils.TestClient[Any, Any]
HOUR = 3600.0
SECRET = "gitops-webhook-secret"


def push_body(url: str, ref: str = "refs/heads/main", **repo: str) -> bytes:
    return json.dumps(
        {"ref": ref, "after": "0" * 40, "repository": {"clone_url": url, **repo}}
    ).encode()


# --- the payload, pure --------------------------------------------------------------


def test_a_push_concerns_the_applications_of_its_repository_and_branch() -> None:
    push = hooks.parse_push(push_body("file:///srv/manifests/", default_branch="main"))
    assert push.revision == "main"
    assert hooks.concerns(push, "/srv/manifests", "HEAD")
    assert hooks.concerns(push, "file:///srv/manifests.git", "main")
    assert hooks.concerns(push, "/srv/manifests", "refs/heads/main")
    assert not hooks.concerns(push, "/srv/manifests", "dev")
    assert not hooks.concerns(push, "/srv/other", "HEAD")
    assert not hooks.concerns(push, "/srv/manifests", "3f2a1bc")  # pinned: never
    dev = hooks.parse_push(push_body("/srv/manifests", "refs/heads/dev", default_branch="main"))
    assert not hooks.concerns(dev, "/srv/manifests", "HEAD")  # HEAD is main
    assert hooks.concerns(dev, "/srv/manifests", "dev")
    tag = hooks.parse_push(push_body("/srv/manifests", "refs/tags/v1.2"))
    assert hooks.concerns(tag, "/srv/manifests", "v1.2")
    assert hooks.concerns(tag, "/srv/manifests", "HEAD")  # no default branch said: refresh


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"ref": "refs/heads/main"}', "no repository"),
        (b'{"ref": "x", "repository": {"name": "m"}}', "no URL"),
        (b'{"repository": {"clone_url": "/m"}}', "no ref"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
)
def test_a_payload_that_is_no_push_is_refused_saying_why(body: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        hooks.parse_push(body)


def test_the_signature_is_githubs() -> None:
    body = b'{"ref": "refs/heads/main"}'
    # GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
    assert hooks.signature(b"It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
    assert hooks.signed(b"k", body, hooks.signature(b"k", body))
    assert not hooks.signed(b"k", body, hooks.signature(b"other", body))
    assert not hooks.signed(b"k", body, "")


# --- the refs of a local repository -------------------------------------------------


def test_the_fingerprint_moves_with_commits_tags_and_pushes(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "work")
    repo.commit({"a.yaml": "a: 1\n"})
    gitdir = refwatch.git_dir(f"file://{repo.path}")
    assert gitdir == repo.path / ".git"
    before = refwatch.fingerprint(gitdir)
    assert before is not None and before == refwatch.fingerprint(gitdir)
    repo.commit({"a.yaml": "a: 2\n"})
    after_commit = refwatch.fingerprint(gitdir)
    assert after_commit != before
    repo.git("tag", "v1")
    assert refwatch.fingerprint(gitdir) != after_commit

    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(bare)], check=True)
    assert refwatch.git_dir(str(bare)) == bare
    repo.git("remote", "add", "origin", str(bare))
    seen = refwatch.fingerprint(bare)
    repo.commit({"a.yaml": "a: 3\n"})
    repo.git("push", "-q", "origin", "main")
    assert refwatch.fingerprint(bare) != seen

    assert refwatch.git_dir("https://example.com/m.git") is None
    assert refwatch.git_dir(str(tmp_path / "missing")) is None
    assert refwatch.git_dir("relative/path") is None


# --- the controller and the API -----------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "repo")
    r.commit({"manifests/vs.yaml": vs()}, "first")
    return r


async def started(tmp_path: Path, *, watch: bool) -> tuple[ControlPlane, Client]:
    state = tmp_path / "state"
    state.mkdir()
    # The poll an hour away: only the watch or the webhook can bring a commit in.
    control = ControlPlane(ControlPlaneConfig(state_dir=state, api_token=TOKEN, gitops_poll_s=HOUR))
    if not watch:
        control.gitops.watch_s = 0
    client = test_utils.TestClient(test_utils.TestServer(make_app(control, TOKEN)))
    await client.start_server()
    control.gitops.watch(asyncio.get_running_loop())
    return control, client


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    control, client = await started(tmp_path, watch=True)
    try:
        yield control
    finally:
        await control.gitops.close()
        await client.close()


@pytest.fixture
async def unwatched(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, Client]]:
    control, client = await started(tmp_path, watch=False)
    try:
        yield control, client
    finally:
        await control.gitops.close()
        await client.close()


async def test_a_commit_to_a_local_repository_syncs_before_the_next_poll(
    watched: ControlPlane, repo: Repo
) -> None:
    apply(watched, application(repo, policy=AUTO))
    await until("the first sync", lambda: vs_timeout(watched) == "5.0")
    repo.commit({"manifests/vs.yaml": vs("7s")}, "longer")
    await until("the commit, seen by the refs watch", lambda: vs_timeout(watched) == "7.0")
    repo.commit({"manifests/vs.yaml": vs("8s")}, "longer still")
    await until("the next one", lambda: vs_timeout(watched) == "8.0")


async def test_the_webhook_refreshes_the_applications_a_push_concerns(
    unwatched: tuple[ControlPlane, Client], repo: Repo
) -> None:
    control, client = unwatched
    apply(control, application(repo, policy=AUTO))
    await until("the first sync", lambda: vs_timeout(control) == "5.0")
    repo.commit({"manifests/vs.yaml": vs("7s")}, "longer")
    body = push_body(f"file://{repo.path}")
    hook = {"X-GitHub-Event": "push", "Content-Type": "application/json"}

    # No secret configured: only the API's token will do.
    resp = await client.post("/api/webhook", data=body, headers=hook)
    assert resp.status == 401 and "argocd-secret" in (await resp.json())["error"]
    assert vs_timeout(control) == "5.0"
    other = push_body("/elsewhere")
    resp = await client.post("/api/webhook", data=other, headers={**hook, **AUTH})
    assert resp.status == 200 and (await resp.json())["refreshed"] == []
    resp = await client.post("/api/webhook", data=body, headers={**hook, **AUTH})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["refreshed"] == ["default/shop"]
    assert vs_timeout(control) == "7.0"  # synced before the answer

    # Argo CD's secret: a GitHub delivery signed with it is enough.
    apply(
        control,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: argocd-secret, namespace: argocd}\n"
        f"stringData: {{webhook.github.secret: {SECRET}}}\n",
    )
    repo.commit({"manifests/vs.yaml": vs("9s")}, "longer still")
    for headers, why in (
        ({}, "no X-Hub-Signature-256 header set"),
        ({"X-Hub-Signature-256": hooks.signature(b"wrong", body)}, "signature check failed"),
    ):
        resp = await client.post("/api/webhook", data=body, headers={**hook, **headers})
        assert resp.status == 401 and why in (await resp.json())["error"]
    assert vs_timeout(control) == "7.0"
    signed = {**hook, "X-Hub-Signature-256": hooks.signature(SECRET.encode(), body)}
    dev = push_body(f"file://{repo.path}", "refs/heads/dev", default_branch="main")
    resp = await client.post(
        "/api/webhook",
        data=dev,
        headers={**signed, "X-Hub-Signature-256": hooks.signature(SECRET.encode(), dev)},
    )
    assert (await resp.json())["refreshed"] == []  # HEAD is main
    resp = await client.post(
        "/api/webhook",
        data=b"{}",
        headers={
            **hook,
            "X-GitHub-Event": "ping",
            "X-Hub-Signature-256": hooks.signature(SECRET.encode(), b"{}"),
        },
    )
    assert resp.status == 200 and (await resp.json())["refreshed"] == []
    resp = await client.post("/api/webhook", data=body, headers=signed)
    assert resp.status == 200 and (await resp.json())["refreshed"] == ["default/shop"]
    assert vs_timeout(control) == "9.0"

    too_big = io.BytesIO(b" " * (4 * 1024 * 1024 + 1))
    resp = await client.post("/api/webhook", data=too_big, headers={**hook, **AUTH})
    assert resp.status == 413

    async def chunked() -> Any:  # no Content-Length: the size is counted as it comes
        for _ in range(5):
            yield b" " * (1024 * 1024)

    resp = await client.post("/api/webhook", data=chunked(), headers={**hook, **AUTH})
    assert resp.status == 413
    resp = await client.post("/api/webhook", data=b"{", headers={**hook, **AUTH})
    assert resp.status == 400 and "not JSON" in (await resp.json())["errors"][0]
