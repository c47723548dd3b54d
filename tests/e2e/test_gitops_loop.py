"""The whole GitOps loop of examples/gitops-loop under `ami up`, as its README runs it:
a GitHub push webhook, signed with HMAC-SHA256, reaches the EventListener through the
gateway; the PipelineRun it starts tests the pushed revision of the app's repository
and, when its tests pass, commits the canary's new weight to the manifests repository
(a bare git repository, pushed to by a step's `git`); the Application syncs that
commit, and the gateway's answer changes. A push whose tests fail promotes nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.meshes import through_gateway
from tests.e2e.test_runtime import Up, running, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gitops-loop"
SECRET = "gitops-loop-example-secret"  # the example's Secret web-webhook
HOST = "web.example.com"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def answer(up: Up) -> str | None:
    try:
        resp = through_gateway(up, HOST)
    except httpx.HTTPError:
        return None
    return resp.text if resp.status_code == 200 else None


def push(up: Up, app: Path) -> dict[str, Any]:
    """GitHub's push delivery for the app's main, signed, through the gateway."""
    commit = git(app, "rev-parse", "main")
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "after": commit,
            "head_commit": {"id": commit},
            "repository": {"name": "app", "clone_url": f"file://{app}"},
        }
    ).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": signature,
    }
    url = up.info().gateway_urls[0].rstrip("/") + "/hooks/"

    def delivered() -> dict[str, Any] | None:
        with httpx.Client(trust_env=False, timeout=10) as c:
            resp = c.post(url, content=body, headers=headers)
        return resp.json() if resp.status_code == 202 else None  # type: ignore[no-any-return]

    return until(delivered, "the EventListener through the gateway", timeout=60)


def finished_run(up: Up, event_id: str) -> dict[str, Any]:
    """The PipelineRun the event started, once it has finished."""

    def done() -> dict[str, Any] | None:
        with up.client() as c:
            items = c.get("/api/v1/pipelines/runs", params={"kind": "PipelineRun"}).json()["items"]
        for run in items:
            labels = run["metadata"].get("labels") or {}
            if labels.get("triggers.tekton.dev/triggers-eventid") != event_id:
                continue
            conditions = (run.get("status") or {}).get("conditions") or []
            if conditions and conditions[0].get("status") in ("True", "False"):
                return run  # type: ignore[no-any-return]
        return None

    return until(done, "the PipelineRun to finish", timeout=120)


def test_a_signed_push_is_tested_committed_synced_and_served(tmp_path: Path) -> None:
    work = tmp_path / "loop"
    setup = subprocess.run(
        [str(EXAMPLE / "setup.sh"), str(work)], capture_output=True, text=True, timeout=60
    )
    assert setup.returncode == 0, setup.stderr
    app, manifests = work / "app", work / "manifests.git"
    first = git(manifests, "rev-parse", "main")

    with running(work / "site", tmp_path / "state", ready=None) as up:
        until(lambda: answer(up) == "hello from web v1\n", "v1 through the gateway", timeout=120)

        # A change whose test fails: the pipeline stops at `test`; nothing is promoted.
        web = (app / "web.py").read_text()
        (app / "web.py").write_text(web.replace("hello from web", "hi from web"))
        git(app, "commit", "-qam", "web: say hi")
        event = push(up, app)
        assert "errorMessage" not in event, event
        run = finished_run(up, event["eventID"])
        condition = run["status"]["conditions"][0]
        assert condition["status"] == "False", condition
        assert git(manifests, "rev-parse", "main") == first
        assert answer(up) == "hello from web v1\n"

        # Fixed: tested, promoted (a commit to the manifests repository), synced, served.
        (app / "web.py").write_text(web)
        git(app, "commit", "-qam", "web: back to hello")
        tested = git(app, "rev-parse", "main")
        event = push(up, app)
        run = finished_run(up, event["eventID"])
        condition = run["status"]["conditions"][0]
        assert condition["reason"] == "Succeeded", run["status"]
        promoted = git(manifests, "rev-parse", "main")
        assert promoted != first
        assert run["status"]["results"] == [{"name": "manifests-commit", "value": promoted}]
        assert git(manifests, "log", "-1", "--format=%s") == (
            f"web: canary v2 at 100% (tested {tested})"
        )
        until(lambda: answer(up) == "hello from web v2\n", "v2 through the gateway", timeout=60)
        for _ in range(10):
            assert answer(up) == "hello from web v2\n"  # every request: v2 has it all

        def synced() -> dict[str, Any] | None:
            with up.client() as c:
                status = c.get("/api/v1/gitops/applications/default/web").json()["status"]
            done = status["sync"]["status"] == "Synced" and status["sync"]["revision"] == promoted
            return status if done else None  # type: ignore[no-any-return]

        status = until(synced, "the Application Synced to the promoted commit", timeout=60)
        assert status["history"][-1]["revision"] == promoted
        assert status["operationState"]["operation"]["initiatedBy"] == {"automated": True}
