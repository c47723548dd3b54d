"""The broker process's entry (`python -m amimesh.eventing.broker_main`): the broker
(`broker.main`), with nats-py imported without aiohttp.

nats-py imports aiohttp, when it can, for a WebSocket transport that the broker never
uses (its servers are `nats://` or `tls://` URLs): about a fifth of a second, a
quarter of the process's start. The HTTP client imports aiohttp itself if an
`https://` delivery ever needs it.
"""

import sys

if "aiohttp" not in sys.modules:
    sys.modules["aiohttp"] = None  # type: ignore[assignment]  # an ImportError, to nats-py
    try:
        import nats.aio.transport  # noqa: F401
    finally:
        del sys.modules["aiohttp"]

from amimesh.eventing import broker  # noqa: E402

if __name__ == "__main__":
    sys.exit(broker.main())
