"""Whether `ami up` runs a JetStream server: only for a config with stored kinds and no
NATS cluster of its own; a config naming none is not even parsed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from amimesh.runtime import nats

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BROKER = "apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: default}\n"
CLUSTER = """apiVersion: v1
kind: ConfigMap
metadata: {name: config-nats, namespace: knative-eventing}
data: {servers: "nats://127.0.0.1:4222"}
"""


def test_a_broker_wants_a_server_unless_the_mesh_names_a_cluster(tmp_path: Path) -> None:
    (tmp_path / "broker.yaml").write_text(BROKER)
    assert nats.wanted(tmp_path)
    (tmp_path / "nats.yaml").write_text(CLUSTER)
    assert not nats.wanted(tmp_path)
    assert nats.wanted(EXAMPLES / "events")


def test_a_config_without_stored_kinds_is_not_parsed() -> None:
    code = (
        "import sys; from pathlib import Path; from amimesh.runtime import nats; "
        f"assert not nats.wanted(Path({str(EXAMPLES / 'shop')!r})); "
        "print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout


def test_a_named_cluster_is_found_and_a_config_without_one_is_not_parsed(
    tmp_path: Path,
) -> None:
    (tmp_path / "broker.yaml").write_text(BROKER)
    assert not nats.names_a_cluster(tmp_path)
    (tmp_path / "nats.yaml").write_text(CLUSTER)
    assert nats.names_a_cluster(tmp_path)
    code = (
        "import sys; from pathlib import Path; from amimesh.runtime import nats; "
        f"assert not nats.names_a_cluster(Path({str(EXAMPLES / 'shop')!r})); "
        "print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout
