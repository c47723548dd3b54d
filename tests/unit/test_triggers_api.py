"""The control plane's Triggers endpoints through aiohttp's test client: an
EventListener's mesh resources, its sink taking only the listener's own token, the
runs a webhook makes, and the listing `ami eventlistener list` reads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils

from amimesh.config.store import Store
from amimesh.controlplane.api import make_app
from amimesh.controlplane.api_json import resource_json
from amimesh.controlplane.applied import Applied
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.resources import parse_documents
from amimesh.resources.kube import Secret
from tests.unit.test_triggers import DOCS

TOKEN = "api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = test_utils.TestClient[Any, Any]


@pytest.fixture
async def cp(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, Client]]:
    cp = ControlPlane(ControlPlaneConfig(state_dir=tmp_path, api_token=TOKEN))
    cp.store.apply(parse_documents(DOCS, "t.yaml"))
    client = test_utils.TestClient(test_utils.TestServer(make_app(cp, TOKEN)))
    await client.start_server()
    cp.triggers.reconcile(str(client.make_url("")).rstrip("/"))
    try:
        yield cp, client
    finally:
        await client.close()


def delivery(body: bytes, **headers: str) -> dict[str, Any]:
    return {
        "headers": {k: [v] for k, v in headers.items()},
        "body": base64.b64encode(body).decode(),
        "url": "/",
    }


async def test_a_listener_is_a_workload_and_a_service(
    cp: tuple[ControlPlane, Client], tmp_path: Path
) -> None:
    control, _ = cp
    assert {r.ref for r in control.store.resources() if r.name == "el-ci"} == {
        "Workload/default/el-ci",
        "Service/default/el-ci",
    }
    token_file = tmp_path / "triggers" / "default.ci.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert control.triggers.token_ok("default", "ci", token_file.read_text())
    assert not control.triggers.token_ok("default", "other", token_file.read_text())


async def test_the_sink_takes_only_the_listeners_token(cp: tuple[ControlPlane, Client]) -> None:
    control, client = cp
    body = json.dumps({"after": "abc", "head_commit": {"id": "abc"}}).encode()
    sig = "sha256=" + hmac.new(b"it's a secret", body, hashlib.sha256).hexdigest()
    payload = delivery(body, **{"X-GitHub-Event": "push", "X-Hub-Signature-256": sig})
    url = "/api/v1/triggers/sink/default/ci"
    for headers in ({}, AUTH, {"Authorization": "Bearer nope"}):
        resp = await client.post(url, json=payload, headers=headers)
        assert resp.status == 401
    own = {"Authorization": f"Bearer {control.triggers.token('default', 'ci')}"}
    resp = await client.post(url, json=payload, headers=own)
    assert resp.status == 202
    answer = await resp.json()
    assert set(answer) == {"eventListener", "namespace", "eventListenerUID", "eventID"}
    runs = [r for r in control.store.resources() if r.KIND == "PipelineRun"]
    # The triggerRef'd Trigger, the inline one and the one the labelSelector selects.
    assert len(runs) == 3
    resp = await client.post(
        "/api/v1/triggers/sink/default/missing",
        json=payload,
        headers={"Authorization": f"Bearer {control.triggers.token('default', 'missing')}"},
    )
    assert resp.status == 404


async def test_eventlisteners_are_listed(cp: tuple[ControlPlane, Client]) -> None:
    _, client = cp
    resp = await client.get("/api/v1/triggers/eventlisteners", headers=AUTH)
    [item] = (await resp.json())["items"]
    assert item["name"] == "ci" and item["available"] is False
    assert item["url"] == "http://el-ci.default.svc.cluster.local:8080"


async def test_a_deleted_listener_takes_its_service_and_token(
    cp: tuple[ControlPlane, Client], tmp_path: Path
) -> None:
    control, _ = cp
    control.store.delete([("EventListener", "default", "ci")])
    control.triggers.reconcile()
    assert not [r for r in control.store.resources() if r.name == "el-ci"]
    assert not (tmp_path / "triggers" / "default.ci.token").exists()
    assert control.triggers.listeners() == []


async def test_what_a_trigger_names_and_is_missing_is_logged_once(
    cp: tuple[ControlPlane, Client], caplog: pytest.LogCaptureFixture
) -> None:
    control, _ = cp
    control.store.delete([("TriggerBinding", "default", "push")])
    control.triggers.reconcile()
    control.triggers.reconcile()
    missing = [r.message for r in caplog.records if 'TriggerBinding "push" not found' in r.message]
    assert missing == [
        "triggers: Trigger.triggers.tekton.dev/default/push: spec.bindings[0].ref: "
        'TriggerBinding "push" not found'
    ]


async def test_an_applied_secret_outlives_a_restart_and_is_served_redacted(
    tmp_path: Path,
) -> None:
    store = Store()
    store.apply(parse_documents(DOCS, "t.yaml"))
    Applied(store, tmp_path / "applied.json").save()
    again = Store()
    Applied(again, tmp_path / "applied.json").load()
    secret = again.get(("Secret", "default", "gh"))
    assert isinstance(secret, Secret) and secret.value("token") == b"it's a secret"
    assert (tmp_path / "applied.json").stat().st_mode & 0o777 == 0o600
    assert resource_json(secret)["data"] == {"token": "<redacted>"}
