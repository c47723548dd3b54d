"""A broker on a three-node NATS cluster on loopback (`knative-eventing/config-nats`,
stream replicas 3): `ami up` starts no server of its own, and a `kill -9` of the
stream's leader while events flow loses no event answered 202; delivery goes on
(`AMI_DURABILITY_EVENTS` events; `bench/eventing.py --durability` runs 2000)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js.api import RetentionPolicy

from tests.e2e.meshes import from_yaml
from tests.e2e.nats_cluster import PASSWORD, USER, Cluster
from tests.e2e.test_eventing import (
    APP,
    BROKER_URL,
    DURABILITY_EVENTS,
    all_delivered,
    binary,
    ids,
    produce_across,
    workload,
)
from tests.e2e.test_runtime import Up, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]


def mesh_yaml(out: Path, servers: str) -> str:
    return "\n---\n".join(
        [
            f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: config-nats, namespace: knative-eventing}}
data: {{servers: "{servers}", credentials: nats.creds, replicas: "3"}}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: default}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: orders}}
spec:
  broker: default
  filter: {{attributes: {{type: order.placed}}}}
  subscriber: {{ref: {{apiVersion: v1, kind: Service, name: orders}}}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: web}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: 8080, name: http, protocol: HTTP}}, hosts: ["*"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: sender}}
spec:
  hosts: ["*"]
  gateways: [web]
  http: [{{route: [{{destination: {{host: sender, port: {{number: 80}}}}}}]}}]
""",
            workload("sender", "sender", out),
            workload("orders", "sink", out),
            f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: own-nats}}
data: {{servers: "{",".join(reversed(servers.split(",")))}", credentials: nats.creds,
       replicas: "1",
       retention: limits, maxAge: PT1H}}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: own}}
spec:
  config: {{apiVersion: v1, kind: ConfigMap, name: own-nats}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {{name: own-orders}}
spec:
  broker: own
  subscriber: {{ref: {{apiVersion: v1, kind: Service, name: own-orders}}}}
""",
            workload("own-orders", "sink", out),
        ]
    )


@pytest.fixture(scope="module")
def cluster_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, Path, Cluster]]:
    root = tmp_path_factory.mktemp("eventing-cluster")
    out = root / "out"
    out.mkdir()
    cluster = Cluster(root)
    try:
        until(cluster.ready, "the NATS cluster", timeout=60)
        files = {"apps/app.py": APP, "nats.creds": f"{USER}:{PASSWORD}"}
        with from_yaml(root, mesh_yaml(out, cluster.servers), files=files, ready=None) as up:
            # A busy machine: streams of three replicas take their time to be made.
            until(up.settled, "every instance ready", timeout=120)
            yield up, out, cluster
    finally:
        cluster.stop()


def test_kill_9_of_the_stream_leader_loses_no_accepted_event(
    cluster_mesh: tuple[Up, Path, Cluster],
) -> None:
    up, out, cluster = cluster_mesh
    assert not (up.state.path / "nats" / "nats.conf").exists()  # no embedded server
    leader = ""

    def kill() -> None:
        nonlocal leader
        info = cluster.stream()
        assert info.config.num_replicas == 3
        leader = info.cluster.leader
        os.kill(cluster.procs[leader].pid, signal.SIGKILL)

    try:
        accepted = produce_across(up, "c", kill, DURABILITY_EVENTS)
        assert cluster.stream().cluster.leader != leader
        all_delivered(out, accepted)
    finally:
        if leader:  # the node back, with its store: what else lives there serves again
            cluster.procs[leader].wait(10)
            cluster.start(leader)


def test_a_broker_of_its_own_config_has_its_stream_and_delivers(
    cluster_mesh: tuple[Up, Path, Cluster],
) -> None:
    """A Broker whose `spec.config` names servers of its own (the cluster's, written
    otherwise: another connection of the broker process), its stream made with its
    settings."""
    up, out, cluster = cluster_mesh

    async def info(js: Any) -> Any:
        return await js.stream_info("KNB_default_own")

    def own_stream() -> Any:
        try:
            return cluster.ask(info)
        except Exception:  # not made yet
            return None

    stream = until(own_stream, "the own broker's stream", timeout=60)
    assert stream.config.num_replicas == 1
    assert stream.config.retention == RetentionPolicy.LIMITS
    assert stream.config.max_age == 3600
    own = BROKER_URL.removesuffix("/default") + "/own"
    url = up.info().gateway_urls[0] + f"/send?to={own}"

    def sent() -> bool:
        r = httpx.post(url, headers=binary("own-1", "anything"), timeout=20, trust_env=False)
        return r.status_code == 202

    until(sent, "the own broker taking an event", timeout=60)
    until(lambda: "own-1" in ids(out, "own-orders"), "the event delivered", timeout=60)
