"""A Broker applied to a mesh started without one: `ami up` starts the JetStream server
when the control plane first has a Broker, the broker becomes ready and delivers, with
no restart of the mesh."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from amimesh.controlplane import mesh_config
from tests.e2e.meshes import apply, from_yaml
from tests.e2e.test_eventing import APP, BROKER_URL, ids, trigger, workload
from tests.e2e.test_kn_cli import ami, ok
from tests.e2e.test_runtime import until

BROKER = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
"""


def test_a_broker_applied_later_starts_the_server_and_delivers(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with from_yaml(tmp_path, workload("orders", "sink", out), files={"apps/app.py": APP}) as up:
        info = json.loads(up.state.info_file.read_text())
        assert "nats_pid" not in info  # no Broker: no server
        # Its port is kept for it, but something else may listen there meanwhile (on a
        # busy machine, another process took it once): that is no JetStream server.
        port = mesh_config.read(up.state.path).nats_port
        with socket.create_server(("127.0.0.1", port)):
            refused = ami(up, "events", "default")
        assert refused.returncode != 0
        assert "no Broker yet" in refused.stderr + refused.stdout

        apply(up, BROKER + "---\n" + trigger("orders", "orders", "filters: [{exact: {type: o}}]"))

        def server_started() -> bool:
            return "nats_pid" in json.loads(up.state.info_file.read_text())

        until(server_started, "the JetStream server started", timeout=60)
        until(
            lambda: "True" in ok(up, "broker", "list"),
            "the broker Ready",
            timeout=60,
        )

        def sent() -> bool:
            done = ami(up, "event", "send", "--to", "default", "-t", "o", "-s", "/t", "-i", "x-1")
            return done.returncode == 0 and "(202)" in done.stdout

        until(sent, "the broker taking an event", timeout=90)
        until(lambda: "x-1" in ids(out, "orders"), "the event delivered", timeout=60)
        assert "x-1" in ok(up, "events", "default")
        assert BROKER_URL in ok(up, "broker", "list")
