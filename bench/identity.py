"""Workload certificates: how long an agent waits for its certificate.

Figures (one JSON line each):
- `cert_issue_ms_p50`, `cert_issue_ms_p99`: from a CSR in hand to the signed chain in
  hand, as the agent gets it: `CaClient.sign` (a new HTTP connection, as each
  renewal makes) → `POST /api/v1/certificates` on a real control plane API on
  loopback → token check, CSR check, signing → the answer parsed.
- `cert_sign_inprocess_ms_p50`, `..._p99`: the baseline, measured in the same run:
  the same CSRs signed by the same CA in-process (no HTTP, no token).
- `key_and_csr_ms_p50`: what the agent spends before asking (EC P-256 key and CSR).
- `cert_issue_per_s`: certificates issued per second with `--concurrency` agents
  asking at once.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amimesh.agent import certs
from amimesh.controlplane.server import ControlPlane, ControlPlaneConfig
from amimesh.identity import csr as csr_mod
from amimesh.identity.spiffe import SpiffeId
from common import pct


def emit(figure: str, value: float, unit: str, **params: Any) -> None:
    line = {"bench": "identity", "figure": figure, "value": round(value, 3), "unit": unit}
    print(json.dumps(line | params), flush=True)


async def run(args: argparse.Namespace) -> None:
    identity = SpiffeId("cluster.local", "default", "bench")
    with tempfile.TemporaryDirectory(prefix="ami-bench-identity-") as tmp:
        cp = ControlPlane(
            ControlPlaneConfig(
                api_port=0, api_token="bench-admin", ca_dir=Path(tmp) / "ca", cert_ttl_s=3600
            )
        )
        await cp.start()
        try:
            url = f"http://127.0.0.1:{cp.api_port}"
            token = cp.identity.grant(identity)
            client = certs.CaClient(url, token)

            made: list[float] = []
            csrs: list[str] = []
            for _ in range(args.requests + args.warmup):
                t0 = time.perf_counter()
                csrs.append(csr_mod.make_csr(csr_mod.new_key(), identity))
                made.append((time.perf_counter() - t0) * 1000)

            for csr in csrs[: args.warmup]:
                await client.sign(csr)
            issue: list[float] = []
            for csr in csrs[args.warmup :]:
                t0 = time.perf_counter()
                issued = await client.sign(csr)
                issue.append((time.perf_counter() - t0) * 1000)
                assert issued.spiffe_id == identity.uri

            ca = cp.identity.ca
            inproc: list[float] = []
            for csr in csrs[args.warmup :]:
                t0 = time.perf_counter()
                now = datetime.datetime.now(datetime.UTC)
                ca.sign(csr_mod.read_csr(csr), identity, ttl=datetime.timedelta(hours=1), now=now)
                inproc.append((time.perf_counter() - t0) * 1000)

            n = len(issue)
            emit("cert_issue_ms_p50", statistics.median(issue), "ms", requests=n)
            emit("cert_issue_ms_p99", pct(issue, 0.99), "ms", requests=n)
            emit("cert_sign_inprocess_ms_p50", statistics.median(inproc), "ms", requests=n)
            emit("cert_sign_inprocess_ms_p99", pct(inproc, 0.99), "ms", requests=n)
            emit("key_and_csr_ms_p50", statistics.median(made), "ms", requests=len(made))

            # Many agents renewing at once (a mesh started together).
            batch = csrs[args.warmup :]
            sem = asyncio.Semaphore(args.concurrency)

            async def one(csr: str) -> None:
                async with sem:
                    await client.sign(csr)

            t0 = time.perf_counter()
            await asyncio.gather(*(one(c) for c in batch))
            elapsed = time.perf_counter() - t0
            emit("cert_issue_per_s", len(batch) / elapsed, "1/s", concurrency=args.concurrency)
        finally:
            await cp.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--quick", action="store_true", help="same figures from a shorter run")
    args = p.parse_args(argv)
    if args.quick:
        args.requests = min(args.requests, 300)
        args.warmup = min(args.warmup, 20)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
