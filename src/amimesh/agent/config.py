"""One instance's config (`instances/<id>/agent.json`): everything its data plane needs.

The node agent decides every port and path, writes this file (mode 0600) for the
record (`ami identity`, adoption after a restart) and runs the instance from it.
Schema (version 2):

    {
      "version": 1,
      "name": "web-0",                      # instance name: AMI_INSTANCE
      "proxy": {                            # the `Proxy` the bootstrap describes
        "id": "web-0.default", "kind": "sidecar", "workload": "web",
        "namespace": "default", "labels": {"app": "web"}, "service_account": "default",
        "address": "127.0.0.1", "outbound_port": 41001, "locality": "", "admin_port": 41002,
        "inbound": [{"port": 8080, "listen_port": 41003, "app_port": 41004,
                     "name": "http", "protocol": "HTTP"}],
        "upstreams": [{"host": "catalog.default.svc.cluster.local", "port": 9090,
                       "listen_port": 41005, "protocol": "GRPC"}],
        "gateway_ports": [],
        "access_log": ".../web-0.default.access.log", "access_log_format": "json",
        "max_concurrency": 0                # in flight to the app per HTTP port; 0: no limit
      },
      "xds": {"host": "127.0.0.1", "port": 40999, "delta": true},
      "envoy": {"bootstrap": ".../envoy.json", "log": ".../web-0.default.envoy.log",
                "log_level": "warning", "drain_s": 0.25,
                "concurrency": 1,           # worker threads: 1 for a sidecar, 2 for the
                                            # gateway, or a ProxyConfig's; 0: Envoy's default
                "env": {}},                 # a ProxyConfig's environmentVariables
      "grace_s": 0.5,                       # not-ready → app stopped (proxies drop it)
      "hold_app": false,                    # true: the app starts once Envoy is ready
      "identity": null | {                  # null: no certificate, no SDS
        "spiffe_id": "spiffe://cluster.local/ns/default/sa/default",
        "sds_socket": ".../sds.sock",       # Envoy's SDS (a private temp dir if too long)
        "cert_file": ".../cert.pem",        # the current chain (public), for `ami identity`
        "bundle_file": ".../trust-bundle.pem"
      },
      "credentials": [                      # a gateway's credentialNames, served by SDS
        {"name": "shop-tls", "ca_secret": false,        # also serve NAME-cacert (MUTUAL)
         "cert_file": "", "key_file": "", "ca_file": "",  # files: read by the node, or
         "dns_names": ["localhost"], "ip_addresses": ["127.0.0.1"]}  # from the mesh CA
      ],
      "app": null | {                       # null: Envoy only (a gateway)
        "command": ["python", "app.py"],    # Workload command + args
        "env": {"GREETING": "hi"},          # the Workload's env, applied last
        "cwd": "/abs/dir", "log": ".../web-0.default.log", "stop_timeout_s": 5.0,
        "probe": null | {"kind": "http" | "tcp", "port": 41004, "path": "/health",
                         "initial_delay_s": 0, "period_s": 1, "timeout_s": 1,
                         "failure_threshold": 3}
      }
    }

An app with no probe is ready as soon as it has started.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from amimesh.model.proxy import GatewayPort, InboundPort, Proxy, Upstream

VERSION = 2


@dataclass(frozen=True)
class ProbeSpec:
    """A readiness probe against the app's own port (not through Envoy), as kubelet's."""

    kind: Literal["http", "tcp"]
    port: int
    path: str = "/"
    initial_delay_s: float = 0.0
    period_s: float = 1.0
    timeout_s: float = 1.0
    failure_threshold: int = 3


@dataclass(frozen=True)
class AppSpec:
    command: tuple[str, ...]
    cwd: str
    log: str
    env: Mapping[str, str] = field(default_factory=dict)
    probe: ProbeSpec | None = None
    stop_timeout_s: float = 5.0
    # Failing `failure_threshold` times in a row, the app is stopped (and restarted).
    liveness: ProbeSpec | None = None


@dataclass(frozen=True)
class EnvoySpec:
    bootstrap: str
    log: str
    log_level: str = "warning"
    concurrency: int = 2
    drain_s: float = 0.25
    # Added to Envoy's environment (a ProxyConfig's environmentVariables).
    env: Mapping[str, str] = field(default_factory=dict)
    # Envoy's working directory: a relative certificate path in a DestinationRule or
    # Gateway is read from here (the mesh's directory). None: the agent's own.
    cwd: str | None = None


@dataclass(frozen=True)
class XdsSpec:
    port: int
    host: str = "127.0.0.1"
    delta: bool = True
    # The control plane's Zipkin span receiver on `host` (for the Zipkin tracer); 0: none.
    telemetry_port: int = 0


@dataclass(frozen=True)
class IdentitySpec:
    """Who the instance is, and where its Envoy gets that identity's certificate."""

    spiffe_id: str
    sds_socket: str
    cert_file: str = ""
    bundle_file: str = ""


@dataclass(frozen=True)
class CredentialSpec:
    """One Gateway `credentialName` the agent serves by SDS (`name`, and `name-cacert`
    when `ca_secret`). With `cert_file` and `key_file` (a secret in the mesh's config
    dir) the agent reads them, and `ca_file` if set (else the mesh's trust bundle);
    without, it makes a key and gets a certificate for `dns_names` and `ip_addresses`
    from the mesh CA, renewed as its own."""

    name: str
    ca_secret: bool = False
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CredentialSpec:
        return cls(
            name=str(d["name"]),
            ca_secret=bool(d.get("ca_secret", False)),
            cert_file=str(d.get("cert_file", "")),
            key_file=str(d.get("key_file", "")),
            ca_file=str(d.get("ca_file", "")),
            dns_names=tuple(d.get("dns_names", ())),
            ip_addresses=tuple(d.get("ip_addresses", ())),
        )


@dataclass(frozen=True)
class AgentConfig:
    name: str
    proxy: Proxy
    xds: XdsSpec
    envoy: EnvoySpec
    app: AppSpec | None = None
    grace_s: float = 0.5
    identity: IdentitySpec | None = None
    credentials: tuple[CredentialSpec, ...] = ()
    hold_app: bool = False

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["proxy"]["labels"] = dict(self.proxy.labels)
        if self.app is not None:
            out["app"]["command"] = list(self.app.command)
            out["app"]["env"] = dict(self.app.env)
        out["envoy"]["env"] = dict(self.envoy.env)
        return {"version": VERSION, **out}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentConfig:
        if data.get("version") != VERSION:
            raise ValueError(f"agent config version {data.get('version')!r}, want {VERSION}")
        app = data.get("app")
        identity = data.get("identity")
        return cls(
            name=str(data["name"]),
            proxy=_proxy(data["proxy"]),
            xds=XdsSpec(**data["xds"]),
            envoy=EnvoySpec(**data["envoy"]),
            app=_app(app) if app is not None else None,
            grace_s=float(data.get("grace_s", 0.5)),
            identity=IdentitySpec(**identity) if identity is not None else None,
            credentials=tuple(CredentialSpec.from_json(c) for c in data.get("credentials", ())),
            hold_app=bool(data.get("hold_app", False)),
        )


def _proxy(d: Mapping[str, Any]) -> Proxy:
    return Proxy(
        id=d["id"],
        kind=d.get("kind", "sidecar"),
        workload=d.get("workload", ""),
        namespace=d.get("namespace", "default"),
        labels=dict(d.get("labels", {})),
        service_account=d.get("service_account", "default"),
        address=d.get("address", "127.0.0.1"),
        outbound_port=int(d.get("outbound_port", 0)),
        inbound=tuple(InboundPort(**p) for p in d.get("inbound", ())),
        locality=d.get("locality", ""),
        upstreams=tuple(Upstream(**u) for u in d.get("upstreams", ())),
        gateway_ports=tuple(GatewayPort(**g) for g in d.get("gateway_ports", ())),
        admin_port=int(d.get("admin_port", 0)),
        access_log=str(d.get("access_log", "")),
        access_log_format="text" if d.get("access_log_format") == "text" else "json",
        max_concurrency=int(d.get("max_concurrency", 0)),
    )


def _app(d: Mapping[str, Any]) -> AppSpec:
    probe = d.get("probe")
    liveness = d.get("liveness")
    return AppSpec(
        command=tuple(d["command"]),
        cwd=d["cwd"],
        log=d["log"],
        env=dict(d.get("env", {})),
        probe=ProbeSpec(**probe) if probe is not None else None,
        stop_timeout_s=float(d.get("stop_timeout_s", 5.0)),
        liveness=ProbeSpec(**liveness) if liveness is not None else None,
    )


def write(path: Path, config: AgentConfig) -> Path:
    """Write `config` as JSON, readable by its owner only (it names ports and paths)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config.to_json(), f, indent=1)
    tmp.replace(path)
    return path


def read(path: Path) -> AgentConfig:
    return AgentConfig.from_json(json.loads(path.read_text()))
