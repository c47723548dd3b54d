"""`controlplane.json` and the tokens: what `ami up` decides for a mesh's control plane.

Light on purpose (no control plane imported): `ami up` writes these before it starts
the control plane process (`controlplane.mesh`), which reads them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_FILE = "controlplane.json"
API_TOKEN = "api-token"
NODE_TOKEN = "node-token"
TRACES_DB = "traces.db"
LOCK_FILE = "controlplane.lock"


def nats_wanted_path(state_dir: Path) -> Path:
    """Written by the control plane once its config has a Broker or a channel on the
    mesh's own JetStream server: `ami up` then starts the server if it had not."""
    return state_dir / "nats" / "wanted"


@dataclass(frozen=True)
class MeshControlPlane:
    """`controlplane.json`: what `ami up` decided for its control plane."""

    config_dir: str
    xds_port: int
    api_port: int
    zipkin_port: int
    trust_domain: str
    cert_ttl_s: float
    exclude_dirs: tuple[str, ...] = ()
    ca_certs_dir: str | None = None
    trace_forward: str | None = None
    # Where the node agent's activator listens (loopback): Knative revisions at zero.
    activator_port: int = 0
    # The mesh's JetStream server (loopback), when its config has a Broker; 0: none.
    nats_port: int = 0
    # How often each Argo CD Application's repository is fetched (seconds).
    gitops_poll_s: float = 3.0
    # `ami up --reload`: Knative Services get a new revision when their files change.
    reload: bool = False
    # The mesh's DIR, which a container's workingDir is relative to ("": none).
    work_dir: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "exclude_dirs": list(self.exclude_dirs)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MeshControlPlane:
        return cls(**{**data, "exclude_dirs": tuple(data.get("exclude_dirs", ()))})


def write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write(state_dir: Path, config: MeshControlPlane) -> None:
    tmp = state_dir / f".{CONFIG_FILE}.tmp"
    tmp.write_text(json.dumps(config.to_json(), indent=1))
    tmp.replace(state_dir / CONFIG_FILE)


def read(state_dir: Path) -> MeshControlPlane:
    return MeshControlPlane.from_json(json.loads((state_dir / CONFIG_FILE).read_text()))
