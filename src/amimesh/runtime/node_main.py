"""`ami node --state DIR`: the node agent process of a local mesh (`runtime.node`).

It holds `DIR/node.lock` while it runs (a second one refuses to start), stops every
instance gracefully on SIGTERM or SIGINT, and on SIGKILL leaves them all running for
the next node agent to adopt.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from amimesh.agent.process import AlreadyRunning, hold_lock
from amimesh.runtime import state
from amimesh.runtime.node import Node
from amimesh.runtime.node_config import NODE_TOKEN, NodeConfig

log = logging.getLogger(__name__)

LOCK_FILE = "node.lock"
API_TOKEN = "api-token"


async def serve(state_dir: Path) -> int:
    st = state.StateDir(state_dir)
    hold_lock(state_dir / LOCK_FILE)
    node = Node(
        st,
        NodeConfig.read(state_dir),
        api_token=(state_dir / API_TOKEN).read_text().strip(),
        node_token=(state_dir / NODE_TOKEN).read_text().strip(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
        log.info("node agent of %s: %d instance(s)", state_dir, len(node.runners))
        await stop.wait()
    finally:
        await node.stop()
    return 0


def run(state_dir: Path, *, log_level: str = "info") -> int:
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        # Absolute: every path planned from it (bootstraps, SDS sockets, logs) stays
        # right in an Envoy that runs in another directory (the mesh's, `EnvoySpec.cwd`).
        return asyncio.run(serve(state_dir.resolve()))
    except AlreadyRunning as e:
        log.error("%s", e)
        return 3
