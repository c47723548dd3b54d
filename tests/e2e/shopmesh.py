"""The example shop under the real `ami up`, for end-to-end tests.

`start(base)` copies examples/shop into `base` (so tests may edit its files), runs
`ami up` on the copy with its own state directory, waits until every instance is ready
and every proxy synced, and returns a `Shop` to drive it: pages through the gateway,
`ami` commands, the HTTP API.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from amimesh.runtime import supervisor
from amimesh.runtime.state import StateDir
from tests.e2e.harness import wait_for

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"
TASKS = SHOP / "tasks"
AMI = [sys.executable, "-m", "amimesh.cli.main"]


@dataclass
class Shop:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    config: Path
    state: Path
    gateway: str
    api: str
    token: str

    def ami(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [*AMI, *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=60
        )
        if check:
            assert out.returncode == 0, out.stdout + out.stderr
        return out

    def apply(self, text: str, name: str) -> None:
        """Apply a YAML text (written beside the copy as `name`) and wait for the sync."""
        path = self.config.parent / name
        path.write_text(text)
        self.ami("apply", "-f", str(path))
        self.synced()

    def delete(self, name: str) -> None:
        self.ami("delete", "-f", str(self.config.parent / name))
        self.synced()

    def api_get(self, path: str) -> Any:
        with httpx.Client(trust_env=False, timeout=10) as http:
            r = http.get(self.api + path, headers={"Authorization": f"Bearer {self.token}"})
            r.raise_for_status()
            return r.json()

    def synced(self, timeout: float = 120.0) -> None:
        """Until every proxy acked the current config, with no change still pending
        (on a timeout, the proxies' last state says which one did not)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.api_get("/api/v1/proxies")
            if state["synced"]:
                return
            assert time.monotonic() < deadline, f"proxies not synced: {state}"
            time.sleep(0.1)

    def fetch(self, user: str | None = None) -> tuple[int, str]:
        """The product page through the gateway: (status, body)."""
        with httpx.Client(trust_env=False, timeout=15) as http:
            r = http.get(self.gateway + "productpage", params={"u": user} if user else None)
            return r.status_code, r.text

    def page(self, user: str | None = None) -> str:
        """The product page, which must answer 200."""
        code, text = self.fetch(user)
        assert code == 200, text
        return text

    def down(self) -> None:
        """`ami down`, which must end `ami up` cleanly."""
        self.ami("down", str(self.config))
        assert self.proc.wait(30) == 0

    def kill(self) -> None:
        """Make sure nothing of this mesh is left (after a failure): `ami up`, and the
        control plane, node agent and instances, which outlive it by design."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        supervisor.kill_mesh(StateDir(self.state))


def start(base: Path) -> Shop:
    config = base / "shop"
    shutil.copytree(SHOP, config, ignore=shutil.ignore_patterns("__pycache__"))
    state = base / "state"
    env = os.environ | {"AMI_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [*AMI, "up", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        info_file: Path = wait_for(lambda: next(iter(state.glob("*/mesh.json")), None))
        info = json.loads(info_file.read_text())
        shop = Shop(
            proc=proc,
            env=env,
            config=config,
            state=info_file.parent,
            gateway=info["gateway_urls"][0],
            api=info["api"],
            token=(info_file.parent / "api-token").read_text().strip(),
        )

        def all_ready() -> bool:
            rows = shop.api_get("/api/v1/status")["instances"]
            return bool(rows) and all(i["ready"] for i in rows)

        wait_for(all_ready)
        shop.synced()
        return shop
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for found in state.glob("*/mesh.json"):
            supervisor.kill_mesh(StateDir(found.parent))
        raise


def running(base: Path) -> Iterator[Shop]:
    """For a module fixture: a shop started in `base`, then `ami down` (killed if that
    fails)."""
    shop = start(base)
    try:
        yield shop
        shop.down()
    finally:
        shop.kill()
