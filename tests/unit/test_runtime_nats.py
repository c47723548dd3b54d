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
    assert nats.wanted(EXAMPLES / "shop")


def test_the_config_is_not_parsed_to_tell(tmp_path: Path) -> None:
    """Told from the text alone: `ami up` starts the server before it has imported
    any resource model."""
    (tmp_path / "mesh").mkdir()
    (tmp_path / "mesh" / "app.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"
        "# kind: Broker, in a comment, is no Broker\n"
    )
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "broker.yaml").write_text(BROKER)
    for root, expected in ((tmp_path / "mesh", False), (tmp_path / "events", True)):
        code = (
            "import sys; from pathlib import Path; from amimesh.runtime import nats; "
            f"assert nats.wanted(Path({str(root)!r})) is {expected}; "
            "print('pydantic' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
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
