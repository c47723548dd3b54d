"""Does Envoy accept what Ami accepted? Configs → outcomes (no tests here).

`prepare` loads a YAML text as the config store does (`parse_documents`: schema and
checks) and, when Ami accepts it, translates it for every proxy of the mesh;
`validate` puts the translations of one or more configs into one static bootstrap and
asks `envoy --mode validate` about it (one Envoy run checks many configs; when it
rejects them, each is checked alone to find the culprit).

The proxies are those a local mesh runs (`runtime.plan`, as the node agent plans them):
replica 0 of every Workload, with its instance registered ready (so endpoints exist);
the ingress gateway when a Gateway selects it; and, in every namespace the config
names, a workload with no ports and no labels, so that config without Workloads still
reaches a sidecar. Each proxy gets what the control plane sends it
(`translate.Generator`), with the identity (the `sds-grpc` cluster) and the Zipkin
receiver that `ami up` gives it.

The bootstrap is the real one (`agent.bootstrap.bootstrap`) with the translated
resources as static resources (`agent.bootstrap.static_bootstrap`: EDS clusters become
STATIC with their assignments inline, RDS route tables inline in their listeners).
Listeners are named after their config and proxy and moved to ports of their own; a
cluster whose name an earlier proxy's cluster has with other content (inbound
clusters: same port, other app port) is renamed `NAME~K` in its proxy's resources.
Certificate files a config names (DestinationRule and Gateway `tls`) are files the
user provides: where no such file exists here, a test certificate of the same role
stands in, so that Envoy checks the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import subprocess
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amimesh.agent import bootstrap as bs
from amimesh.model.proxy import GatewayPort, Proxy
from amimesh.model.snapshot import build_snapshot
from amimesh.resources import parse_documents
from amimesh.resources.meta import Resource
from amimesh.resources.workload import Workload
from amimesh.runtime import gateway, plan
from amimesh.runtime.state import StateDir
from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE, Built
from amimesh.translate.generate import Generator

SOURCE = "mutant.yaml"
ZIPKIN_PORT = 9411
ENVOY_TIMEOUT_S = 120
FIRST_PORT = 20000
# Listener ports one config may use, so that several share a bootstrap.
PORTS_PER_CONFIG = 1000
# A Workload with no ports or labels, one per namespace: a sidecar every config reaches.
PROBE_WORKLOAD = "ami-property-probe"


@dataclass(frozen=True)
class Outcome:
    """`refused` (Ami's errors), `accepted` (by Envoy too), `rejected` (by Envoy: a
    bug), `crashed` (an exception after Ami accepted: a bug) or `skipped` (no ports
    left for its listeners)."""

    kind: str
    detail: str = ""

    @property
    def bug(self) -> bool:
        return self.kind in ("rejected", "crashed")


@dataclass(frozen=True)
class Unit:
    """What one proxy gets, as static resources of a bootstrap (shared: not to be
    changed), and a digest of them."""

    proxy: Proxy
    clusters: list[dict[str, Any]]
    listeners: list[dict[str, Any]]
    digest: bytes


@dataclass(frozen=True)
class Prepared:
    """A config's outcome when known without Envoy, else what its proxies get."""

    outcome: Outcome | None = None
    units: tuple[Unit, ...] = ()

    @property
    def digest(self) -> bytes:
        """Equal for configs that translate to the same resources."""
        h = hashlib.blake2b()
        for u in self.units:
            h.update(u.proxy.id.encode() + b"\0" + u.digest)
        return h.digest()


@dataclass(frozen=True)
class Files:
    """Where the checks write: bootstraps, access logs, and stand-in certificates; and
    static resources already made, by the bytes of what they are made of (mutants of one
    config share most of them, and turning protobufs into JSON takes most of the time a
    mutant takes)."""

    root: Path
    cert: Path
    key: Path
    made: dict[bytes, dict[str, Any]] = dataclasses.field(default_factory=dict, compare=False)

    @classmethod
    def create(cls, root: Path) -> Files:
        from tests.e2e.harness import self_signed_cert

        (root / "state/logs").mkdir(parents=True, exist_ok=True)
        cert, key = self_signed_cert(root, "example.com")
        return cls(root, cert, key)


def check(text: str, files: Files) -> Outcome:
    """The outcome of one config, start to end."""
    prepared = prepare(text, files)
    if prepared.outcome is not None:
        return prepared.outcome
    return validate([prepared], files)[0]


def prepare(text: str, files: Files) -> Prepared:
    result = parse_documents(text, SOURCE)
    if result.errors:
        return Prepared(Outcome("refused", "\n".join(str(e) for e in result.errors)))
    try:
        units = translate(result.resources, files)
    except Exception:  # noqa: BLE001 - any exception once Ami accepted is the finding
        return Prepared(Outcome("crashed", traceback.format_exc(limit=-8)))
    if _max_port(units) >= FIRST_PORT + PORTS_PER_CONFIG:
        return Prepared(Outcome("skipped", "more listener ports than PORTS_PER_CONFIG"))
    return Prepared(units=tuple(units))


def validate(configs: Sequence[Prepared], files: Files, name: str = "check") -> list[Outcome]:
    """Envoy's verdict on each translated config; one Envoy run when it accepts them all."""
    if len(configs) > 1:
        first = _run_envoy(bootstrap(configs, files), files, name)
        if first.kind == "accepted":
            return [first] * len(configs)
    return [_run_envoy(bootstrap([c], files), files, f"{name}-{i}") for i, c in enumerate(configs)]


def _run_envoy(config: dict[str, Any], files: Files, name: str) -> Outcome:
    path = bs.write_bootstrap(files.root / f"{name}.json", config)
    cmd = [bs.envoy_path(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"]
    cmd += ["-l", "critical"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=ENVOY_TIMEOUT_S)
    finally:
        path.unlink(missing_ok=True)
    if proc.returncode == 0:
        return Outcome("accepted")
    return Outcome("rejected", _reason(proc.stdout + proc.stderr))


def _reason(output: str) -> str:
    """Envoy's complaint without the dump of the whole bootstrap it often starts with."""
    cut = output.rfind("\n}\n: ")
    text = output[cut + 4 :] if cut >= 0 else output
    return text.strip()[-3000:]


# --- the mesh's proxies --------------------------------------------------------------


def _plans(resources: list[Resource], files: Files) -> list[plan.InstanceSpec]:
    snap = build_snapshot(resources)
    ports = itertools.count(FIRST_PORT)
    state = StateDir(files.root / "state")

    def allocate() -> int:
        return next(ports)

    workloads = sorted((r for r in resources if isinstance(r, Workload)), key=lambda w: w.key)
    for ns in sorted({r.namespace for r in resources}):
        probe = {
            "apiVersion": "ami.dev/v1alpha1",
            "kind": "Workload",
            "metadata": {"name": PROBE_WORKLOAD, "namespace": ns},
            "spec": {"command": ["true"]},
        }
        workloads.append(Workload.model_validate(probe))
    specs = []
    for w in workloads:
        spec = plan.workload_instance(
            w,
            0,
            services=snap.services.values(),
            allocate=allocate,
            state=state,
            xds_port=1,
            config_dir=files.root,
            telemetry_port=ZIPKIN_PORT,
        )
        specs.append(spec)
    schemes = gateway.server_ports(snap)
    if schemes:
        gateway_ports = tuple(GatewayPort(p, allocate()) for p in schemes)
        specs.append(
            plan.gateway_instance(
                gateway_ports,
                allocate=allocate,
                state=state,
                xds_port=1,
                credentials=gateway.credentials(snap, files.root),
                telemetry_port=ZIPKIN_PORT,
            )
        )
    return specs


def translate(resources: list[Resource], files: Files) -> list[Unit]:
    """What every proxy of the mesh gets, each as static resources."""
    specs = _plans(resources, files)
    instances = [s.registration for s in specs if s.registration is not None]
    snap = build_snapshot(resources, [dataclasses.replace(i, ready=True) for i in instances])
    generator = Generator(snap)
    units = []
    for spec in specs:
        proxy = spec.agent.proxy
        tables = generator.generate(proxy)
        assignments = {b.name: b for b in tables.get(ENDPOINT, {}).values()}
        routes = tuple(tables.get(ROUTE, {}).values())
        h = hashlib.blake2b()
        clusters = []
        for c in tables.get(CLUSTER, {}).values():
            clusters.append(_static(files, h, "clusters", (c, assignments.get(_service_name(c)))))
        listeners = []
        for lis in tables.get(LISTENER, {}).values():
            listeners.append(_static(files, h, "listeners", (lis, *routes)))
        units.append(Unit(proxy, clusters, listeners, h.digest()))
    return units


def _service_name(cluster: Built) -> str:
    message: Any = cluster.message
    return str(message.eds_cluster_config.service_name or message.name)


def _static(
    files: Files, digest: Any, kind: str, parts: tuple[Built | None, ...]
) -> dict[str, Any]:
    """`parts[0]` as `static_bootstrap` holds it (with the assignment or route tables
    of `parts[1:]`) and test certificates for missing files; `digest` takes its key."""
    key = kind.encode() + b"\0" + b"\0".join(p.version.encode() if p else b"" for p in parts)
    digest.update(key)
    found = files.made.get(key)
    if found is None:
        messages: list[Any] = [p.message for p in parts if p is not None]
        if kind == "clusters":
            static = bs.static_bootstrap(clusters=messages[:1], load_assignments=messages[1:])
        else:
            static = bs.static_bootstrap(listeners=messages[:1], routes=messages[1:])
        found = _with_files(static["static_resources"][kind][0], files)
        if len(files.made) > 50000:
            files.made.clear()
        files.made[key] = found
    return found


def bootstrap(configs: Sequence[Prepared], files: Files) -> dict[str, Any]:
    """One bootstrap holding every proxy's resources of every config."""
    first = configs[0].units[0].proxy
    base = bs.bootstrap(
        first,
        xds_port=1,
        admin_port=0,
        sds_socket=str(files.root / "sds.sock"),
        telemetry_http_port=ZIPKIN_PORT,
    )
    base.pop("dynamic_resources")
    clusters = {c["name"]: c for c in base["static_resources"]["clusters"]}
    listeners = []
    k = 0
    for n, config in enumerate(configs):
        for unit in config.units:
            k += 1
            renames = {}
            for c in unit.clusters:
                if c["name"] in clusters and clusters[c["name"]] != c:
                    renames[c["name"]] = f"{c['name']}~{k}"
                    c = _renamed(c, renames)
                clusters[c["name"]] = c
            for lis in unit.listeners:
                lis = {**_renamed(lis, renames)}
                lis["name"] = f"{n}:{unit.proxy.id}~{lis['name']}"
                listeners.append(_moved(lis, n * PORTS_PER_CONFIG))
    base["static_resources"] = {"clusters": list(clusters.values()), "listeners": listeners}
    return base


def _ports(listener: dict[str, Any]) -> list[int]:
    address = listener.get("address", {}).get("socket_address", {})
    return [int(address.get("port_value", 0))]


def _max_port(units: Sequence[Unit]) -> int:
    return max((p for u in units for lis in u.listeners for p in _ports(lis)), default=0)


def _moved(listener: dict[str, Any], offset: int) -> dict[str, Any]:
    if not offset:
        return listener
    address = listener.get("address", {}).get("socket_address")
    if address is not None and address.get("port_value"):
        moved = {**address, "port_value": int(address["port_value"]) + offset}
        listener = {**listener, "address": {**listener["address"], "socket_address": moved}}
    return listener


def _renamed(tree: Any, renames: dict[str, str]) -> Any:
    """`tree` with every string that is a renamed cluster's name renamed."""
    if not renames:
        return tree
    if isinstance(tree, dict):
        return {k: _renamed(v, renames) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_renamed(v, renames) for v in tree]
    if isinstance(tree, str):
        return renames.get(tree, tree)
    return tree


_ROLES = {"certificate_chain": "cert", "trusted_ca": "cert", "private_key": "key"}


def _with_files(tree: Any, files: Files, role: str = "") -> Any:
    """`tree` with each certificate file that does not exist here replaced by a test
    file of its role (a path Envoy refuses whatever the file, such as one with a line
    break, is kept)."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            if k == "filename" and role and isinstance(v, str) and _plain(v):
                if not Path(v).is_file():
                    v = str(files.cert if role == "cert" else files.key)
            out[k] = _with_files(v, files, _ROLES.get(k, ""))
        return out
    if isinstance(tree, list):
        return [_with_files(v, files, role) for v in tree]
    return tree


def _plain(path: str) -> bool:
    return bool(path) and not any(c in path for c in "\x00\r\n")
