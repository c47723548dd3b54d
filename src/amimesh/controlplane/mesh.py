"""The control plane of a local mesh, as its own process: `ami controlplane --state DIR`.

`ami up` writes `DIR/controlplane.json` (the config directory, the ports, the CA and
trace settings) and the tokens (`api-token`, `node-token`, mode 0600), then starts
this process. Started again with the same state dir (after a crash or a `kill -9`), it
binds the same ports, takes back the resources applied through the API and the node
agents' last reports, and serves the same config: every Envoy reconnects to it and
resyncs, and nothing the data plane had is lost meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from amimesh.agent.process import hold_lock
from amimesh.controlplane.mesh_config import API_TOKEN, LOCK_FILE, NODE_TOKEN, TRACES_DB, read
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig

log = logging.getLogger(__name__)


def control_plane_config(state_dir: Path) -> ControlPlaneConfig:
    mesh = read(state_dir)
    return ControlPlaneConfig(
        xds_port=mesh.xds_port,
        api_port=mesh.api_port,
        api_token=(state_dir / API_TOKEN).read_text().strip(),
        node_token=(state_dir / NODE_TOKEN).read_text().strip(),
        config_dir=Path(mesh.config_dir),
        exclude_dirs=mesh.exclude_dirs,
        trust_domain=mesh.trust_domain,
        ca_dir=state_dir / "ca",
        ca_certs_dir=Path(mesh.ca_certs_dir) if mesh.ca_certs_dir else None,
        cert_ttl_s=mesh.cert_ttl_s,
        trace_db=state_dir / TRACES_DB,
        trace_forward=mesh.trace_forward,
        zipkin_port=mesh.zipkin_port,
        activator_port=mesh.activator_port or None,
        nats_port=mesh.nats_port or None,
        gitops_poll_s=mesh.gitops_poll_s,
        reload=mesh.reload,
        work_dir=Path(mesh.work_dir) if mesh.work_dir else None,
        state_dir=state_dir,
    )


async def serve(state_dir: Path) -> int:
    """Run the mesh's control plane until SIGTERM or SIGINT (one per state dir: it
    holds `controlplane.lock`; raises AlreadyRunning)."""
    hold_lock(state_dir / LOCK_FILE)
    cp = ControlPlane(control_plane_config(state_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await cp.start()
    log.info("control plane of %s: API %d, xDS %d", state_dir, cp.api_port, cp.xds_port)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await cp.stop()
    return 0
