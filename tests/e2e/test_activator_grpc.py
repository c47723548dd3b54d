"""gRPC through the activator: a Knative Service whose port is `h2c` starts at zero and
stays behind the activator (target-burst-capacity -1); calls through the gateway wake
it and reach it over HTTP/2 end to end — unary, server- and client-streaming, and an
error status carried in the trailers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest

from tests.e2e.meshes import from_yaml
from tests.e2e.test_knative_serving import ready_at
from tests.e2e.test_runtime import Up, until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

APP = r"""
import os
from concurrent import futures

import grpc

def say(request, context):
    return b"hello " + request + b" from " + os.environ["K_REVISION"].encode()

def count(request, context):
    for i in range(int(request)):
        yield str(i).encode()

def total(requests, context):
    return str(sum(len(r) for r in requests)).encode()

def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

handlers = {
    "Say": grpc.unary_unary_rpc_method_handler(say),
    "Count": grpc.unary_stream_rpc_method_handler(count),
    "Total": grpc.stream_unary_rpc_method_handler(total),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
}
server = grpc.server(futures.ThreadPoolExecutor(8))
server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Echo", handlers)])
server.add_insecure_port("127.0.0.1:" + os.environ["PORT"])
server.start()
server.wait_for_termination()
"""

MESH = """
apiVersion: v1
kind: ConfigMap
metadata: {name: config-domain, namespace: knative-serving}
data:
  example.com: ""
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config-autoscaler, namespace: knative-serving}
data:
  allow-zero-initial-scale: "true"
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/initial-scale: "0"
        # The activator stays in the path whatever the load (Knative's -1).
        autoscaling.knative.dev/target-burst-capacity: "-1"
    spec:
      containers:
        - image: example.com/grpc-echo:latest
          command: [PYTHON, app.py]
          workingDir: apps
          ports: [{name: h2c, containerPort: 8080}]
"""
HOST = "echo.default.example.com"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("activator-grpc")
    with from_yaml(root, MESH.replace("PYTHON", sys.executable), files={"apps/app.py": APP}) as up:
        until(lambda: ready_at(up, "echo", "echo-00001"), "echo Ready")
        yield up


def through_activator(up: Up) -> bool:
    with up.client() as c:
        rows: list[dict[str, Any]] = c.get("/api/v1/serving/revisions").json()["revisions"]
    return any(r["revision"] == "echo-00001" and r["activator"] for r in rows)


@pytest.fixture()
def channel(mesh: Up) -> Iterator[grpc.Channel]:
    address = urlsplit(mesh.info().gateway_urls[0]).netloc
    options = [("grpc.default_authority", HOST), ("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(address, options=options) as ch:
        yield ch


def test_a_call_at_zero_wakes_the_revision_and_is_answered(mesh: Up, channel: Any) -> None:
    until(lambda: through_activator(mesh), "the activator in the path")
    say = channel.unary_unary("/test.Echo/Say")
    assert say(b"grpc", timeout=90) == b"hello grpc from echo-00001"
    assert through_activator(mesh)


def test_streams_both_ways_and_trailers_pass_through(mesh: Up, channel: Any) -> None:
    until(lambda: through_activator(mesh), "the activator in the path")
    count = channel.unary_stream("/test.Echo/Count")
    assert list(count(b"50", timeout=90)) == [str(i).encode() for i in range(50)]
    total = channel.stream_unary("/test.Echo/Total")
    parts = [bytes(100_000) for _ in range(10)]  # a megabyte: beyond a stream's window
    assert total(iter(parts), timeout=90) == b"1000000"
    fail = channel.unary_unary("/test.Echo/Fail")
    with pytest.raises(grpc.RpcError) as err:
        fail(b"", timeout=90)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "no such thing"


def test_many_calls_at_once_share_the_connections(mesh: Up, channel: Any) -> None:
    say = channel.unary_unary("/test.Echo/Say")
    futures = [say.future(str(i).encode(), timeout=90) for i in range(40)]
    answers = sorted(f.result() for f in futures)
    assert answers == sorted(f"hello {i} from echo-00001".encode() for i in range(40))
