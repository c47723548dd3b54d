"""Where a running mesh keeps its state, and how commands find it.

One directory per mesh (default `$AMI_STATE_DIR`, else `~/.local/state/ami`, then the
mesh's name): logs, per-instance files, the API token and `mesh.json`, which says
how to reach the control plane. `current` in the root points at the mesh started
last, so `ami status` needs no argument when one mesh runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

CURRENT = "current"


def state_root() -> Path:
    env = os.environ.get("AMI_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ami"


def mesh_name(config_dir: Path) -> str:
    """A name for the mesh of `config_dir`: its base name plus a short digest of its
    absolute path, so two directories with the same base name do not collide."""
    absolute = str(config_dir.resolve())
    base = re.sub(r"[^a-z0-9-]+", "-", config_dir.resolve().name.lower()).strip("-") or "mesh"
    return f"{base}-{hashlib.blake2b(absolute.encode(), digest_size=3).hexdigest()}"


@dataclass(frozen=True)
class MeshInfo:
    """`mesh.json`: written by `ami up` when it starts (or adopts) the control plane and
    the node agent, and again whenever either is restarted (with their start times)."""

    name: str
    config_dir: str
    pid: int  # the `ami up` supervisor
    api: str  # base URL of the control plane's HTTP API, e.g. http://127.0.0.1:15123
    xds_port: int
    gateway_urls: tuple[str, ...] = ()
    controlplane_pid: int = 0
    node_pid: int = 0


@dataclass(frozen=True)
class StateDir:
    path: Path

    @property
    def token_file(self) -> Path:
        """The API bearer token (mode 0600)."""
        return self.path / "api-token"

    @property
    def info_file(self) -> Path:
        return self.path / "mesh.json"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def instances(self) -> Path:
        return self.path / "instances"

    @property
    def ca(self) -> Path:
        """The mesh's CA (a self-signed root, its key at mode 0600), kept across runs."""
        return self.path / "ca"

    def create(self) -> StateDir:
        for d in (self.path, self.logs, self.instances):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        return self

    def write_token(self, token: str) -> None:
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token)

    def read_token(self) -> str:
        return self.token_file.read_text().strip()

    def write_info(self, info: MeshInfo) -> None:
        tmp = self.info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=2))
        tmp.replace(self.info_file)

    def read_info(self) -> MeshInfo:
        data = json.loads(self.info_file.read_text())
        data["gateway_urls"] = tuple(data.get("gateway_urls", ()))
        known = MeshInfo.__dataclass_fields__
        return MeshInfo(**{k: v for k, v in data.items() if k in known})

    def mark_current(self) -> None:
        link = self.path.parent / CURRENT
        tmp = self.path.parent / f".{CURRENT}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.path.name)
        tmp.replace(link)


def for_config(config_dir: Path, root: Path | None = None) -> StateDir:
    return StateDir((root or state_root()) / mesh_name(config_dir))


def find(mesh: str | None = None, root: Path | None = None) -> StateDir:
    """The state of mesh `mesh` (a name, a config directory or a state path), or of
    the mesh started last. Raises FileNotFoundError with a hint when there is none."""
    root = root or state_root()
    if mesh:
        for candidate in (Path(mesh), root / mesh):
            if (candidate / "mesh.json").exists():
                return StateDir(candidate)
        by_config = for_config(Path(mesh), root)
        if by_config.info_file.exists():
            return by_config
        raise FileNotFoundError(f"no running mesh {mesh!r} under {root}")
    current = root / CURRENT
    if (current / "mesh.json").exists():
        return StateDir(current.resolve())
    raise FileNotFoundError(
        f"no mesh is running (nothing under {root}); start one with `ami up DIR`"
    )


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (and, where /proc tells, is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
