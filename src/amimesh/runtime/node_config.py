"""`node.json`: what `ami up` decides for its node agent, and the node agent's files.

Light on purpose: `ami up` writes it before it starts the node agent (`runtime.node`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from amimesh.controlplane.mesh_config import NODE_TOKEN

__all__ = ["NODE_TOKEN", "NodeConfig", "read_pids"]

NODE_FILE = "node.json"
STATUS_FILE = "status.json"
PLAN_FILE = "plan.json"
PIDS_FILE = "pids.json"
CONFIG_WAIT_S = 30.0
# How long the first config may take to come (the control plane is starting).
FIRST_CONFIG_TIMEOUT_S = 60.0
FIRST_CONFIG_POLL_S = 0.02


@dataclass(frozen=True)
class NodeConfig:
    """`node.json`: what `ami up` decided for its node agent."""

    config_dir: str  # the mesh's DIR (Workload workingDir is relative to it)
    config_root: str  # DIR/mesh or DIR (gateway credentials' files)
    api: str
    xds_port: int
    zipkin_port: int
    trust_domain: str
    name: str = "local"
    gateway_port: int | None = None
    grace_s: float = 0.5
    access_log_format: Literal["json", "text"] = "json"
    activator_port: int = 0  # 0: no activator
    reload: bool = False  # `ami up --reload`: live reload of Workloads with a workingDir

    @classmethod
    def read(cls, state_dir: Path) -> NodeConfig:
        return cls(**json.loads((state_dir / NODE_FILE).read_text()))

    def write(self, state_dir: Path) -> None:
        tmp = state_dir / f".{NODE_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(state_dir / NODE_FILE)


def read_pids(home: Path) -> dict[str, Any]:
    """What the last run of the instance whose files are in `home` recorded: the pids
    and start times of its Envoy and app (`pids.json`), empty if nothing."""
    try:
        data = json.loads((home / PIDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
