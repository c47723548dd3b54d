"""The environment of an app process (the contract of docs/runtime.md). No I/O."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from amimesh.agent.config import AgentConfig
from amimesh.model.proxy import Upstream
from amimesh.resources import expansion

NO_PROXY = "localhost,127.0.0.1,::1"


def env_name(text: str) -> str:
    """`grpc-api` → `GRPC_API`: upper case, anything else than letters and digits → `_`."""
    return re.sub(r"[^A-Z0-9]", "_", text.upper())


def upstream_var(upstream: Upstream) -> str:
    """`catalog.default.svc.cluster.local` port 9090 → `AMI_UPSTREAM_CATALOG_9090`."""
    service = upstream.host.split(".", 1)[0]
    return f"AMI_UPSTREAM_{env_name(service)}_{upstream.port}"


def mesh_env(config: AgentConfig, sds_socket: str = "") -> dict[str, str]:
    """The variables the mesh sets for the app (docs/runtime.md): `PORT`, the proxy
    variables, `AMI_*`; not the inherited ones nor the Workload's `env`. `sds_socket`:
    where the instance's identity is served (`AMI_SDS_SOCKET`), "" for none."""
    proxy = config.proxy
    env: dict[str, str] = {}
    inbound = proxy.inbound
    if inbound:
        env["PORT"] = str(inbound[0].app_port)
    for p in inbound:
        if p.name:
            env[f"PORT_{env_name(p.name)}"] = str(p.app_port)
    if proxy.outbound_port > 0:
        url = f"http://127.0.0.1:{proxy.outbound_port}"
        env.update(HTTP_PROXY=url, http_proxy=url)
    env.update(NO_PROXY=NO_PROXY, no_proxy=NO_PROXY)
    for u in proxy.upstreams:
        env[upstream_var(u)] = f"127.0.0.1:{u.listen_port}"
    env.update(
        AMI_WORKLOAD=proxy.workload,
        AMI_NAMESPACE=proxy.namespace,
        AMI_INSTANCE=config.name,
        AMI_SERVICE_ACCOUNT=proxy.service_account,
    )
    if proxy.admin_port > 0:
        env["AMI_PROXY_ADMIN_PORT"] = str(proxy.admin_port)
    if sds_socket:
        env["AMI_SDS_SOCKET"] = sds_socket
    return env


def own_env(config: AgentConfig, mesh: Mapping[str, str]) -> dict[str, str]:
    """The Workload's `env`, each value's `$(VAR)` references expanded as Kubernetes
    does: against the entries before it, then the mesh's variables."""
    if config.app is None:
        return {}
    return expansion.expand_env(config.app.env.items(), mesh)


def app_env(
    config: AgentConfig, inherited: Mapping[str, str], python_bin: str, sds_socket: str = ""
) -> dict[str, str]:
    """The app's environment: `inherited` (the agent's own), then the mesh's variables,
    then the Workload's `env` (which may override any of them).

    `python_bin` (the directory of the mesh's interpreter) goes first on PATH, so that
    `python` in a Workload's command is the interpreter Ami runs on.
    """
    env = dict(inherited)
    path = env.get("PATH", "")
    env["PATH"] = python_bin + (os.pathsep + path if path else "")
    mesh = mesh_env(config, sds_socket)
    env.update(mesh)
    env.update(own_env(config, mesh))
    return env


def app_command(config: AgentConfig, sds_socket: str = "") -> tuple[str, ...]:
    """The app's command line with `$(VAR)` references expanded, as the kubelet expands
    a container's command and args: against the mesh's variables and the Workload's
    `env` (the inherited environment is not consulted, as an image's is not)."""
    if config.app is None:
        return ()
    mesh = mesh_env(config, sds_socket)
    return expansion.expand_all(config.app.command, {**mesh, **own_env(config, mesh)})
