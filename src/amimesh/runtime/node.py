"""The node agent: one process per machine (per mesh) that runs the data plane of every
instance there.

    ami node --state DIR          (started, watched and restarted by `ami up`)

It learns what to run from the control plane (`GET /api/v1/node/config`, a long
poll: the one config intake is the control plane's), plans each Workload replica and
the ingress gateway (ports, paths), and runs each as an `InstanceRunner` in this
process: its Envoy and its app are the instance's only processes. It makes each
identity's key in its own memory and serves each Envoy only its own identity by SDS
(one socket per instance), and reports ready instances and every instance's status
to the control plane (`PUT /api/v1/nodes/NAME`), whole, retrying while it is away.

Started again after a crash, it adopts what runs: an instance whose recorded Envoy
and app still run, and whose plan is unchanged, is taken on as it is (same pids,
same ports); anything else recorded is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amimesh import gcstart
from amimesh.agent import certs, probe
from amimesh.agent import config as agent_config
from amimesh.agent.agent import Adopted, Agent
from amimesh.agent.identities import Identities
from amimesh.agent.process import kill_group, naming, start_time
from amimesh.config.watch import Watches
from amimesh.identity.spiffe import workload_id
from amimesh.model import sidecars
from amimesh.model.proxy import GatewayPort
from amimesh.model.snapshot import Snapshot, build_snapshot
from amimesh.resources import parse_object
from amimesh.resources.workload import Workload, reload_wanted
from amimesh.runtime import gateway, plan, state
from amimesh.runtime.activator import Activator, Target
from amimesh.runtime.instance import InstanceRunner, adoptable
from amimesh.runtime.node_api import ApiUnavailable, NodeApi, Reporter
from amimesh.runtime.node_config import (
    CONFIG_WAIT_S,
    FIRST_CONFIG_POLL_S,
    FIRST_CONFIG_TIMEOUT_S,
    PLAN_FILE,
    STATUS_FILE,
    NodeConfig,
    read_pids,
)
from amimesh.runtime.ports import PortAllocator
from amimesh.serving.expand import REVISION_LABEL

if TYPE_CHECKING:
    from amimesh.runtime.pipelines import PipelineAgent

log = logging.getLogger(__name__)

ACTIVATOR_NAMESPACE = "knative-serving"
ACTIVATOR_ACCOUNT = "activator"
SAMPLE_S = 1.0
# Tekton's runner starts once no instance of the first config is starting any more,
# or after this long.
PIPELINES_AFTER_S = 10.0
PIPELINES_POLL_S = 0.1
SAMPLE_RESEND_S = 3.0
# Live reload: how long a replica started anew may take to be ready (else the old one
# stays), and to appear in the endpoints of the Envoys that route to the old one.
RELOAD_READY_S = 120.0
RELOAD_ROUTED_S = 15.0
RELOAD_ROUTED_POLL_S = 0.1
# The inbound listeners' requests in flight (`inbound_<port>` is their stat prefix).
_INBOUND = re.compile(r"^http\.inbound_\d+\.downstream_rq_(active|total): (\d+)$", re.MULTILINE)


async def inbound_requests(admin_port: int) -> tuple[int, int] | None:
    """(requests in flight, requests so far) at an Envoy's inbound listeners, from its
    admin; None if it does not answer."""
    try:
        status, body = await probe.request(
            admin_port, "/stats?filter=downstream_rq_&usedonly", timeout_s=1.0
        )
    except (OSError, TimeoutError):
        return None
    if status != 200:
        return None
    active = total = 0
    for kind, n in _INBOUND.findall(body):
        if kind == "active":
            active += int(n)
        else:
            total += int(n)
    return active, total


def template(w: Workload) -> dict[str, Any]:
    """What a replica is made from: all but `replicas`, whose change only adds or
    removes replicas (as a Deployment's does)."""
    return {
        "labels": w.metadata.labels,
        "annotations": w.metadata.annotations,
        "spec": w.spec.model_dump(exclude={"replicas"}),
    }


class Node:
    def __init__(
        self,
        st: state.StateDir,
        config: NodeConfig,
        *,
        api_token: str,
        node_token: str,
        environ: Mapping[str, str] | None = None,
        on_change: Callable[[InstanceRunner], None] | None = None,
    ) -> None:
        self.state = st
        self.config = config
        self.api = NodeApi(config.api, api_token)
        self.ca = certs.CaClient(config.api, node_token)
        self.identities = Identities(self.ca.sign)
        self.ports = PortAllocator(owner=f"{st.path.resolve()}#node")
        self.runners: dict[str, InstanceRunner] = {}
        self.gateway: InstanceRunner | None = None
        self.gateway_urls: tuple[str, ...] = ()
        self.plan_errors: dict[str, str] = {}
        self.reporter = Reporter(self.api, config.name, self.status, lambda: self.gateway_urls)
        self._environ = dict(environ if environ is not None else os.environ)
        self._python_bin = str(Path(sys.executable).parent)
        self._on_change = on_change
        self._snapshot: Snapshot | None = None
        self._workloads: list[Workload] = []
        self._workload_of: dict[str, Workload] = {}
        self._ports_of: dict[str, list[int]] = {}
        self._retiring: dict[str, asyncio.Task[None]] = {}
        # Live reload: each replica's index, the replicas started beside the one they
        # replace (by the replaced one's id), each workload's rolling restart and its
        # count (the generation in the new replicas' names).
        self._index_of: dict[str, int] = {}
        self._surge: dict[str, InstanceRunner] = {}
        self._rolls: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._generation: dict[str, int] = {}
        self._watches = Watches(self._files_changed)
        self._stopping: dict[str, InstanceRunner] = {}
        self._records: set[str] = set()  # instance dirs of the last run, not yet looked at
        self._tasks: list[asyncio.Task[None]] = []
        self._version = -1
        self._closing = False
        self._status_due = False
        self.activator: Activator | None = None
        # Tekton's runner, made once the first instances are up (its modules are not
        # on the way to the first ready instance).
        self.pipelines: PipelineAgent | None = None
        self._pipelines_task: asyncio.Task[None] | None = None
        self._api_token = api_token

    # --- start -------------------------------------------------------------------------

    async def start(self) -> None:
        """Get the config, adopt or clean up what the last run left, start the rest."""
        self._tasks.append(asyncio.create_task(self.reporter.run(), name="node-reporter"))
        self.state.instances.mkdir(parents=True, exist_ok=True)
        self._records = {d.name for d in self.state.instances.iterdir() if d.is_dir()}
        self._kill_strangers()
        await self._first_config()
        self._start_gateway()
        self._reconcile()
        for iid in sorted(self._records):  # recorded, not wanted any more
            self._stop_recorded(iid)
        self._records.clear()
        # The first report at once, whatever runs (even nothing): the control plane
        # starts what waits for the first instances once none is starting any more.
        self.reporter.changed()
        self._tasks.append(asyncio.create_task(self._watch(), name="node-config-watch"))
        self._tasks.append(asyncio.create_task(self._sample(), name="node-concurrency"))
        if self.config.activator_port:
            await self._start_activator(self.config.activator_port)
        self._pipelines_task = asyncio.create_task(self._start_pipelines(), name="node-tekton")
        self._write_status()

    async def _start_pipelines(self) -> None:
        """Tekton's runner, once the instances just started are ready (or after
        PIPELINES_AFTER_S): its modules, imported on a thread, would otherwise take the
        CPU and the interpreter from the apps, Envoys and certificates starting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PIPELINES_AFTER_S
        while loop.time() < deadline and any(  # noqa: ASYNC110  # each runner's own state
            r.state == "starting" for r in self.runners.values()
        ):
            await asyncio.sleep(PIPELINES_POLL_S)
        await asyncio.to_thread(importlib.import_module, "amimesh.runtime.pipelines")
        from amimesh.runtime.pipelines import PipelineAgent

        config = self.config
        self.pipelines = PipelineAgent(
            config.api, self._api_token, config.name, self.state.path / "pipelines"
        )
        await self.pipelines.start()
        gcstart.started()

    async def _first_config(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIRST_CONFIG_TIMEOUT_S
        waited = False
        while True:
            try:
                version, docs = await self.api.config(since=-1, wait_s=0)
                self._take(version, docs)
                return
            except ApiUnavailable as e:
                if loop.time() > deadline:
                    raise
                if not waited:
                    log.info("waiting for the control plane: %s", e)
                    waited = True
                # A refused connection on loopback costs nothing: ask again soon.
                await asyncio.sleep(FIRST_CONFIG_POLL_S)

    async def _watch(self) -> None:
        delay = 0.1
        while True:
            try:
                version, docs = await self.api.config(since=self._version, wait_s=CONFIG_WAIT_S)
            except ApiUnavailable as e:
                log.debug("config watch: %s", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            if version != self._version:
                self._take(version, docs)
                if self.gateway is None:  # the first Gateway (or Knative route) came
                    self._start_gateway()
                self._reconcile()

    async def _start_activator(self, port: int) -> None:
        """The activator (Knative revisions with no ready instance wait there), with
        its own identity for the hop to the instances."""
        activator = Activator(port, self._ready_of, self.api.activate)
        try:
            await activator.start()
        except OSError as e:
            log.error("activator: cannot listen on 127.0.0.1:%d: %s", port, e)
            return
        self.activator = activator
        spiffe = workload_id(ACTIVATOR_NAMESPACE, ACTIVATOR_ACCOUNT, self.config.trust_domain)

        async def identity() -> None:
            try:
                secrets, _issued, _release = await self.identities.acquire(
                    str(spiffe), lambda s, _i: activator.use_identity(s)
                )
            except (certs.CaRefused, certs.CaUnavailable) as e:
                log.error("activator: no certificate: %s", e)
                return
            activator.use_identity(secrets)
            activator.changed()

        self._tasks.append(asyncio.create_task(identity(), name="activator-identity"))

    def _ready_of(self, namespace: str, revision: str) -> list[Target]:
        """The ready instances of a revision on this node, for the activator."""
        out = []
        for runner in self.runners.values():
            proxy = runner.spec.agent.proxy
            if (
                runner.ready
                and proxy.namespace == namespace
                and proxy.labels.get(REVISION_LABEL) == revision
                and proxy.inbound
            ):
                port = proxy.inbound[0].listen_port
                out.append(Target(runner.spec.id, port, proxy.max_concurrency))
        return out

    async def _sample(self) -> None:
        """Every second, the requests in flight at each Knative revision instance's
        inbound sidecar (Envoy's `downstream_rq_active`) and the requests per second
        since the last look (`downstream_rq_total`), for the control plane's
        autoscaler: sent when they change, and at least every few seconds."""
        last: tuple[dict[str, float], dict[str, float]] = ({}, {})
        totals: dict[str, tuple[float, int]] = {}  # instance → (when, requests so far)
        sent_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SAMPLE_S)
            runners = [
                r
                for r in self.runners.values()
                if r.ready and REVISION_LABEL in r.spec.agent.proxy.labels
            ]
            if not runners and not last[0]:
                continue
            values = await asyncio.gather(
                *(inbound_requests(r.spec.agent.proxy.admin_port) for r in runners)
            )
            in_flight: dict[str, float] = {}
            rps: dict[str, float] = {}
            now = loop.time()
            for runner, value in zip(runners, values, strict=True):
                if value is None:
                    continue
                iid, (active, total) = runner.spec.id, value
                in_flight[iid] = float(active)
                before = totals.get(iid)
                if before is not None and now > before[0] and total >= before[1]:
                    rps[iid] = round((total - before[1]) / (now - before[0]), 3)
                totals[iid] = (now, total)
            for gone in set(totals) - set(in_flight):
                del totals[gone]
            if (in_flight, rps) == last and now - sent_at < SAMPLE_RESEND_S:
                continue
            try:
                await self.api.concurrency(self.config.name, in_flight, rps)
            except ApiUnavailable as e:
                log.debug("concurrency report: %s", e)
                continue
            last, sent_at = (in_flight, rps), now

    def _take(self, version: int, docs: list[dict[str, Any]]) -> None:
        result = parse_object({"apiVersion": "v1", "kind": "List", "items": docs}, "control plane")
        for e in result.errors:  # the control plane validated them: a version skew
            log.error("resource from the control plane left out: %s", e)
        self._version = version
        self._snapshot = build_snapshot(result.resources, version=version)
        found = [r for r in result.resources if isinstance(r, Workload)]
        self._workloads = sorted(found, key=lambda w: w.key)

    # --- the gateway -------------------------------------------------------------------

    def _start_gateway(self) -> None:
        assert self._snapshot is not None
        schemes = gateway.server_ports(self._snapshot)
        if not schemes:
            return
        iid = plan.instance_id(f"{plan.GATEWAY_WORKLOAD}-0", plan.GATEWAY_NAMESPACE)
        recorded = self._recorded_config(iid)
        replay: list[int] = []
        if recorded is not None and [g.port for g in recorded.proxy.gateway_ports] == list(schemes):
            ports: tuple[GatewayPort, ...] = recorded.proxy.gateway_ports
            replay = [recorded.proxy.admin_port]
        else:
            first = self.config.gateway_port
            ports = gateway.host_ports(schemes, self.ports, first=first)
        allocate = self._allocator(iid, replay)
        spec = plan.gateway_instance(
            ports,
            allocate=allocate,
            state=self.state,
            xds_port=self.config.xds_port,
            trust_domain=self.config.trust_domain,
            credentials=gateway.credentials(self._snapshot, Path(self.config.config_root)),
            access_log_format=self.config.access_log_format,
            telemetry_port=self.config.zipkin_port,
            config_dir=Path(self.config.config_dir),
            settings=sidecars.proxy_settings(
                self._snapshot, plan.GATEWAY_NAMESPACE, plan.GATEWAY_LABELS
            ),
        )
        adopted = self._adopt(iid, spec, recorded)
        if adopted is not None:
            for p in ports:
                self.ports.reserve(p.listen_port)
        self.gateway_urls = gateway.urls(ports, schemes)
        self.gateway = self._runner(spec, adopted)

    # --- reconcile workloads -----------------------------------------------------------

    def _reconcile(self) -> None:
        """Make the running instances match the Workloads of the config."""
        if self._closing:
            return
        desired: dict[str, tuple[Workload, int]] = {}
        for w in self._workloads:
            for i in range(w.spec.replicas):
                desired[plan.instance_id(f"{w.name}-{i}", w.namespace)] = (w, i)
        for iid in list(self.runners):
            wanted = desired.get(iid)
            if wanted is None or template(wanted[0]) != template(self._workload_of[iid]):
                self._retire(iid)
            else:
                self._workload_of[iid] = wanted[0]
        for iid, (w, i) in desired.items():
            if iid not in self.runners and iid not in self._retiring:
                self._launch(iid, w, i)
        self._watch_files()
        self._write_status()

    def _plan_instance(
        self, workload: Workload, index: int, generation: int, spec_id: str, replay: list[int]
    ) -> plan.InstanceSpec:
        """Instance `index` of `workload` as the node runs it (raises plan.PlanError)."""
        assert self._snapshot is not None
        return plan.workload_instance(
            workload,
            index,
            generation=generation,
            services=self._snapshot.services.values(),
            allocate=self._allocator(spec_id, replay),
            state=self.state,
            xds_port=self.config.xds_port,
            config_dir=Path(self.config.config_dir),
            grace_s=self.config.grace_s,
            trust_domain=self.config.trust_domain,
            access_log_format=self.config.access_log_format,
            telemetry_port=self.config.zipkin_port,
            settings=sidecars.proxy_settings(
                self._snapshot, workload.namespace, workload.metadata.labels
            ),
        )

    def _allocator(self, iid: str, replay: list[int]) -> Callable[[], int]:
        """Ports for `iid`: those of `replay` first (an adopted instance's), then new."""
        taken = self._ports_of.setdefault(iid, [])
        pending = list(replay)

        def allocate() -> int:
            if pending:
                port = pending.pop(0)
                self.ports.reserve(port)
            else:
                port = self.ports.allocate()
            taken.append(port)
            return port

        return allocate

    def _launch(self, iid: str, workload: Workload, index: int) -> None:
        """Start replica `index` of `workload` in the slot `iid` (its first name; a
        live reload's replica has a name of its own, adopted as such)."""
        assert self._snapshot is not None
        generation = self._recorded_generation(workload, index)
        spec_id = plan.instance_id(
            plan.replica_name(workload.name, index, generation), workload.namespace
        )
        recorded = self._recorded_config(spec_id)
        replay = self._recorded_ports(spec_id) if recorded is not None else []
        try:
            spec = self._plan_instance(workload, index, generation, spec_id, replay)
        except plan.PlanError as e:
            self._release(spec_id)
            self.plan_errors[iid] = f"{workload.ref}: {e}"
            log.error("%s", self.plan_errors[iid])
            if recorded is not None:
                self._stop_recorded(spec_id)
            return
        self.plan_errors.pop(iid, None)
        adopted = self._adopt(spec_id, spec, recorded)
        self._workload_of[iid] = workload
        self._index_of[iid] = index
        self.runners[iid] = self._runner(spec, adopted)

    def _recorded_generation(self, workload: Workload, index: int) -> int:
        """The generation of the replica a live reload left running (0: none)."""
        pattern = re.compile(
            rf"{re.escape(plan.replica_name(workload.name, index))}-r(\d+)\."
            rf"{re.escape(workload.namespace)}"
        )
        found = [int(m.group(1)) for r in self._records if (m := pattern.fullmatch(r))]
        if found:
            self._generation[_workload_key(workload)] = max(found)
            return max(found)
        return 0

    def _runner(self, spec: plan.InstanceSpec, adopted: Adopted | None) -> InstanceRunner:
        if spec.agent.identity is not None:
            self.identities.prepare(spec.agent.identity.spiffe_id)
        home = spec.config_path.parent
        home.mkdir(parents=True, exist_ok=True)
        (home / PLAN_FILE).write_text(json.dumps({"ports": self._ports_of.get(spec.id, [])}))
        runner = InstanceRunner(
            spec, self.reporter, self._agent, on_change=self._changed, adopted=adopted
        )
        runner.start()
        return runner

    def _agent(
        self,
        config: agent_config.AgentConfig,
        report: Callable[[dict[str, Any]], None],
        adopted: Adopted | None,
    ) -> Agent:
        return Agent(
            config,
            report=report,
            environ=self._environ,
            python_bin=self._python_bin,
            identities=self.identities,
            ca=self.ca,
            adopted=adopted,
        )

    def _retire(self, iid: str) -> None:
        runner = self.runners.pop(iid)
        self._workload_of.pop(iid)
        self._index_of.pop(iid, None)
        surge = self._surge.pop(iid, None)
        self._stopping[iid] = runner  # shown until it is gone
        spec_id = runner.spec.id

        async def retire() -> None:
            try:
                if surge is not None:
                    await self._discard(surge)
                await runner.stop()
            finally:
                self._release(spec_id)
                shutil.rmtree(self.state.instances / spec_id, ignore_errors=True)
                self._retiring.pop(iid, None)
                self._stopping.pop(iid, None)
                self._write_status()
                self._reconcile()  # a changed workload's replica starts anew now

        self._retiring[iid] = asyncio.create_task(retire(), name=f"retire-{iid}")

    def _release(self, iid: str) -> None:
        for port in self._ports_of.pop(iid, ()):
            self.ports.release(port)

    # --- live reload -------------------------------------------------------------------

    def _watch_files(self) -> None:
        """Watch the working directory of every Workload that live reload applies to
        (not a Knative revision's: a change of its files makes a new revision, in the
        control plane)."""
        wanted: dict[str, Path] = {}
        for w in self._workloads:
            if REVISION_LABEL in w.metadata.labels or w.spec.replicas < 1:
                continue
            if not reload_wanted(
                w.metadata.annotations,
                has_working_dir=bool(w.spec.workingDir),
                default=self.config.reload,
            ):
                continue
            root = Path(self.config.config_dir) / (w.spec.workingDir or "")
            wanted[_workload_key(w)] = root.resolve()
        self._watches.set(wanted)

    def _files_changed(self, key: str) -> None:
        if self._closing:
            return
        if key in self._rolls:
            self._again.add(key)  # once more when this roll is done
            return
        self._rolls[key] = asyncio.create_task(self._roll(key), name=f"reload-{key}")

    async def _roll(self, key: str) -> None:
        """Replace every replica of the workload `key`, one at a time."""
        try:
            generation = self._generation.get(key, 0) + 1
            self._generation[key] = generation
            slots = sorted(i for i, w in self._workload_of.items() if _workload_key(w) == key)
            log.info("live reload: %s changed: restarting %d instance(s)", key, len(slots))
            for slot in slots:
                await self._replace(slot, generation)
        finally:
            self._rolls.pop(key, None)
        if key in self._again and not self._closing:
            self._again.discard(key)
            self._files_changed(key)

    async def _replace(self, slot: str, generation: int) -> None:
        """Start the replica of `slot` anew beside the running one; once the new one is
        ready and in the endpoints of every Envoy here that routes to the old one, stop
        the old one (its endpoint leaves first, then it drains). A new one that does
        not become ready is stopped, and the old one keeps serving."""
        old = self.runners.get(slot)
        workload = self._workload_of.get(slot)
        if old is None or workload is None or self._closing or self._snapshot is None:
            return
        index = self._index_of[slot]
        name = plan.replica_name(workload.name, index, generation)
        spec_id = plan.instance_id(name, workload.namespace)
        try:
            spec = self._plan_instance(workload, index, generation, spec_id, [])
        except plan.PlanError as e:
            self._release(spec_id)
            log.error("live reload of %s: %s", workload.ref, e)
            return
        new = self._runner(spec, None)
        self._surge[slot] = new
        self._write_status()
        ready = await self._until_ready(new)
        if ready and self.runners.get(slot) is old:
            await self._until_routed(old, new)
        if self._surge.get(slot) is not new:  # the slot was retired meanwhile
            return
        del self._surge[slot]
        if not ready or self.runners.get(slot) is not old:
            log.warning("live reload: %s did not become ready: %s keeps serving", name, old.spec.id)
            await self._discard(new)
            return
        log.info("live reload: %s ready: stopping %s", spec.id, old.spec.id)
        self.runners[slot] = new
        # Out of every endpoint first, then stopped: no proxy here sends it a request
        # while its app goes away, however late a push is on a busy machine.
        self.reporter.deregister_instance(old.spec.id)
        await self._until_unrouted(old)
        await self._discard(old)

    async def _until_ready(self, runner: InstanceRunner) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RELOAD_READY_S
        while loop.time() < deadline:
            if runner.ready:
                return True
            if runner.done or runner.state in ("backoff", "exited", "completed"):
                return False
            await asyncio.sleep(RELOAD_ROUTED_POLL_S)
        return False

    async def _until_routed(self, old: InstanceRunner, new: InstanceRunner) -> None:
        """Until every Envoy of this node whose endpoints hold `old` holds `new` too."""
        old_at, new_at = _endpoints(old), _endpoints(new)
        if old_at and new_at:
            await self._until_envoys(
                lambda body: not any(a in body for a in old_at) or all(a in body for a in new_at),
                f"{new.spec.id} in every proxy's endpoints",
            )

    async def _until_unrouted(self, old: InstanceRunner) -> None:
        """Until no Envoy of this node holds `old` among its endpoints."""
        old_at = _endpoints(old)
        if old_at:
            await self._until_envoys(
                lambda body: not any(a in body for a in old_at),
                f"{old.spec.id} out of every proxy's endpoints",
            )

    async def _until_envoys(self, done: Callable[[str], bool], what: str) -> None:
        """Until `done` holds for the endpoints (`/clusters`) of every ready Envoy of
        this node, at most `RELOAD_ROUTED_S` (an Envoy of another node is not looked
        at)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RELOAD_ROUTED_S
        while loop.time() < deadline:
            envoys = [r for r in (*self.runners.values(), self.gateway) if r is not None]
            admins = [r.spec.agent.proxy.admin_port for r in envoys if r.ready]
            bodies = await asyncio.gather(*(_clusters(port) for port in admins))
            if all(done(body) for body in bodies):
                return
            await asyncio.sleep(RELOAD_ROUTED_POLL_S)
        log.warning("live reload: waited %gs for %s", RELOAD_ROUTED_S, what)

    async def _discard(self, runner: InstanceRunner) -> None:
        """Stop an instance that no slot holds, and free what it had."""
        iid = runner.spec.id
        self._stopping[iid] = runner
        self._write_status()
        try:
            await runner.stop()
        finally:
            self._stopping.pop(iid, None)
            self._release(iid)
            shutil.rmtree(self.state.instances / iid, ignore_errors=True)
            self._write_status()

    # --- adoption ----------------------------------------------------------------------

    def _recorded_config(self, iid: str) -> agent_config.AgentConfig | None:
        if iid not in self._records:
            return None
        try:
            return agent_config.read(self.state.instances / iid / "agent.json")
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _recorded_ports(self, iid: str) -> list[int]:
        try:
            data = json.loads((self.state.instances / iid / PLAN_FILE).read_text())
            return [int(p) for p in data["ports"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _adopt(
        self, iid: str, spec: plan.InstanceSpec, recorded: agent_config.AgentConfig | None
    ) -> Adopted | None:
        """The running processes of `iid` if they are exactly what `spec` would start."""
        if recorded is None:
            return None
        self._records.discard(iid)
        adopted = adoptable(spec) if recorded == spec.agent else None
        if adopted is None:
            self._kill_recorded(iid)
            log.info("%s: not adopted (changed or gone): started anew", iid)
        else:
            log.info("%s: adopted (envoy %d)", iid, adopted.envoy.pid)
        return adopted

    def _kill_strangers(self) -> None:
        """Kill the Envoys of this mesh that no record names: started by a node agent
        killed before it could write their pids down (adopting them is impossible, and
        a second copy would be started beside them)."""
        known = set()
        for iid in self._records:
            pids = read_pids(self.state.instances / iid)
            known |= {int(pids.get(k, 0)) for k in ("app_pid", "envoy_pid")}
        for pid in naming(self.state.instances):
            if pid not in known:
                log.warning("killing process %d of this mesh that no record names", pid)
                kill_group(pid)

    def _kill_recorded(self, iid: str) -> None:
        pids = read_pids(self.state.instances / iid)
        for pid_key, started_key in (("app_pid", "app_started"), ("envoy_pid", "envoy_started")):
            pid = int(pids.get(pid_key, 0))
            if pid > 0 and start_time(pid) == pids.get(started_key):
                kill_group(pid)

    def _stop_recorded(self, iid: str) -> None:
        self._records.discard(iid)
        self._kill_recorded(iid)
        shutil.rmtree(self.state.instances / iid, ignore_errors=True)

    # --- status ------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Every instance (the gateway last) as `ami status` shows it."""
        live = [*self._stopping.values(), *self.runners.values(), *self._surge.values()]
        runners = sorted(live, key=lambda r: r.spec.id)
        if self.gateway is not None:
            runners.append(self.gateway)
        return [r.status() for r in runners]

    def _changed(self, runner: InstanceRunner) -> None:
        self._write_status()
        if self.activator is not None:
            self.activator.changed()
        if self._on_change is not None:
            self._on_change(runner)

    def _write_status(self) -> None:
        """status.json for `ami up` (the control plane may be away), and a report: at
        most one write per loop turn, however many instances changed in it."""
        self.reporter.changed()
        if not self._status_due:
            self._status_due = True
            asyncio.get_running_loop().call_soon(self._write_status_now)

    def _write_status_now(self) -> None:
        self._status_due = False
        path = self.state.path / STATUS_FILE
        tmp = path.with_name(f".{STATUS_FILE}.tmp")
        body = {
            "time": time.time(),
            "pid": os.getpid(),
            "instances": self.status(),
            "gateway_urls": list(self.gateway_urls),
            "plan_errors": sorted(self.plan_errors.values()),
        }
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(body))
            tmp.replace(path)

    # --- stop --------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every instance gracefully (endpoints removed first), report, and end."""
        self._closing = True
        await self._watches.close()
        rolls = list(self._rolls.values())
        for task in rolls:
            task.cancel()
        await asyncio.gather(*rolls, return_exceptions=True)
        runners = [*self.runners.values(), *self._surge.values(), *self._stopping.values()]
        if self.gateway is not None:
            runners.append(self.gateway)
        await asyncio.gather(*(r.stop() for r in runners))
        await asyncio.gather(*self._retiring.values(), return_exceptions=True)
        self._write_status_now()
        with contextlib.suppress(ApiUnavailable, TimeoutError):
            await asyncio.wait_for(self.api.report(self.config.name, self.reporter.body()), 2.0)
        await self._close()

    async def _close(self) -> None:
        if self._pipelines_task is not None:
            self._pipelines_task.cancel()
            await asyncio.gather(self._pipelines_task, return_exceptions=True)
        if self.pipelines is not None:
            await self.pipelines.stop()
        if self.activator is not None:
            await self.activator.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.identities.close()
        await self.api.close()


def _workload_key(w: Workload) -> str:
    return f"{w.namespace}/{w.name}"


def _endpoints(runner: InstanceRunner) -> list[str]:
    """How an instance's endpoints appear in an Envoy's `/clusters`."""
    reg = runner.spec.registration
    return [f"::{reg.address}:{p}::" for p in reg.ports.values()] if reg is not None else []


async def _clusters(admin_port: int) -> str:
    """An Envoy's `/clusters` (its endpoints, `cluster::host:port::...`); "" if it
    does not answer."""
    try:
        status, body = await probe.request(admin_port, "/clusters", timeout_s=2.0)
    except (OSError, TimeoutError):
        return ""
    return body if status == 200 else ""
