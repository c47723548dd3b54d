"""`ami controlplane`: serve xDS for a directory of config until interrupted."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from amimesh.controlplane import mesh
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


async def serve(config: ControlPlaneConfig) -> None:
    cp = ControlPlane(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    port = await cp.start()
    print(f"ami control plane: xDS on {config.xds_host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await cp.stop()


def run(
    *,
    config: Path | None,
    xds_host: str,
    xds_port: int,
    debounce_s: float,
    watch: bool,
    log_level: str,
) -> int:
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(
        serve(
            ControlPlaneConfig(
                xds_host=xds_host,
                xds_port=xds_port,
                config_dir=config,
                debounce_s=debounce_s,
                watch=watch,
            )
        )
    )
    return 0


def run_mesh(state_dir: Path, *, log_level: str) -> int:
    """The control plane of the local mesh whose state is in `state_dir`."""
    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT)
    return asyncio.run(mesh.serve(state_dir))
