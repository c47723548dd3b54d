"""An EventListener as mesh resources: a Workload and a Service named `el-NAME` (as
Tekton names its Deployment and Service), port 8080, running Ami's listener process
(`python -m amimesh.pipelines.listener`) behind its sidecar. Pure.

The listener hands every webhook to the control plane, which runs the interceptors,
bindings and templates (`controlplane/triggers.py`); `api` and `token_file` say where
and with what.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amimesh.resources import tekton_triggers as tt

PORT = 8080
PREFIX = "el-"
LISTENER_LABEL = "eventlistener"


def service_name(name: str) -> str:
    return f"{PREFIX}{name}"


def url(el: tt.EventListener) -> str:
    """Its address inside the mesh, as Tekton's status.address.url writes it."""
    return f"http://{service_name(el.name)}.{el.namespace}.svc.cluster.local:{PORT}"


def listener_resources(el: tt.EventListener, *, api: str, token_file: str) -> list[dict[str, Any]]:
    """The Workload and Service that serve `el`."""
    name = service_name(el.name)
    labels = {
        "app": name,
        LISTENER_LABEL: el.name,
        "app.kubernetes.io/managed-by": "EventListener",
        "app.kubernetes.io/part-of": "Triggers",
    }
    env = [
        {"name": "AMI_EVENTLISTENER", "value": el.name},
        {"name": "AMI_EVENTLISTENER_NAMESPACE", "value": el.namespace},
        {"name": "AMI_CONTROLPLANE", "value": api},
        {"name": "AMI_EVENTLISTENER_TOKEN_FILE", "value": token_file},
    ]
    workload = {
        "apiVersion": "ami.dev/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": name, "namespace": el.namespace, "labels": labels},
        "spec": {
            "command": ["python", "-m", "amimesh.pipelines.listener"],
            "env": env,
            "ports": [{"name": "http-listener", "port": PORT, "protocol": "HTTP"}],
            "readinessProbe": {"httpGet": {"path": "/live", "port": PORT}},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": el.namespace, "labels": labels},
        "spec": {
            "selector": {LISTENER_LABEL: el.name},
            "ports": [{"name": "http-listener", "port": PORT, "targetPort": PORT}],
        },
    }
    return [workload, service]
