"""The agent's I/O shell in-process, on paths that start no process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from amimesh.agent import config as ac
from amimesh.agent import events
from amimesh.agent.agent import Agent
from amimesh.agent.machine import EXIT_ENVOY_FAILED
from amimesh.model.proxy import Proxy


async def test_a_broken_step_fails_the_instance_instead_of_hanging(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    cfg = ac.AgentConfig(
        name="x-0",
        proxy=Proxy(id="x-0.default", workload="x", admin_port=1),
        xds=ac.XdsSpec(port=1),
        # The bootstrap cannot be written: its directory is a file.
        envoy=ac.EnvoySpec(bootstrap=str(tmp_path / "file" / "envoy.json"), log="unused"),
        app=ac.AppSpec(command=("true",), cwd=str(tmp_path), log=str(tmp_path / "app.log")),
        hold_app=True,
    )
    seen: list[dict[str, Any]] = []
    agent = Agent(cfg, report=seen.append, environ={}, python_bin=str(Path(sys.executable).parent))
    assert await agent.run() == EXIT_ENVOY_FAILED
    assert [e["event"] for e in seen] == ["failed", "stopped"]
    assert "agent error" in seen[0]["reason"]
    assert seen[-1] == events.stopped(EXIT_ENVOY_FAILED)
    assert agent.envoy is None and agent.app is None
