"""`ami up DIR`: run a mesh (control plane, workloads with sidecars, ingress gateway)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "up",
        help="run the mesh of DIR in the foreground (DIR/mesh/ if present, else DIR)",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the mesh's config directory")
    p.add_argument(
        "--state-dir",
        type=Path,
        help="root of the state dirs (default: $AMI_STATE_DIR or ~/.local/state/ami)",
    )
    p.add_argument(
        "--gateway-port",
        type=int,
        metavar="N",
        help="host port for the first Gateway server port (default: its own number if "
        ">= 1024 and free, else any free port)",
    )
    p.add_argument(
        "--cert-ttl",
        type=duration,
        metavar="DURATION",
        help="lifetime of workload certificates, renewed at half life: 24h (default), "
        "90m, 30s, or seconds",
    )
    p.add_argument(
        "--ca-certs",
        type=Path,
        metavar="DIR",
        help="sign with this root or intermediate CA (Istio's cacerts layout: ca-cert.pem, "
        "ca-key.pem, root-cert.pem, cert-chain.pem) instead of the mesh's own root",
    )
    p.add_argument(
        "--access-log-format",
        default="json",
        choices=["json", "text"],
        help="every proxy's access log (logs/<id>.access.log): one JSON object per line "
        "(default) or Istio's text line",
    )
    p.add_argument(
        "--trace-forward",
        type=host_port,
        metavar="HOST:PORT",
        help="also send every trace export to this OTLP/gRPC receiver (a collector, Jaeger, "
        "Tempo); traces stay in the mesh's store too",
    )
    p.add_argument(
        "--gitops-poll",
        type=duration,
        metavar="DURATION",
        help="how often each Argo CD Application's repository is fetched: 3s (default)",
    )
    p.add_argument(
        "--reload",
        action="store_true",
        help="live reload: restart a Workload's instances (one at a time) when files under "
        "its workingDir change; a Knative Service gets a new revision (docs/devloop.md)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=run)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """Seconds in `30s`, `90m`, `24h`, `7d` or a plain number of seconds (> 0)."""
    value, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    try:
        seconds = float(value) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want e.g. 24h, 90m, 30s") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return seconds


def host_port(text: str) -> str:
    """`HOST:PORT`, as given; an error names what is wrong."""
    from amimesh.telemetry.trace_forward import parse_target

    try:
        parse_target(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text.strip()


def run(args: argparse.Namespace) -> int:
    from amimesh.runtime import up

    return up.run(
        args.dir,
        state_root=args.state_dir,
        gateway_port=args.gateway_port,
        log_level=args.log_level,
        cert_ttl_s=args.cert_ttl,
        ca_certs_dir=args.ca_certs,
        access_log_format=args.access_log_format,
        trace_forward=args.trace_forward,
        gitops_poll_s=args.gitops_poll,
        reload=args.reload,
    )
