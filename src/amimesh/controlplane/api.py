"""The control plane's HTTP API (aiohttp, on the control plane's own event loop).

Every request carries `Authorization: Bearer TOKEN`; answers are JSON, errors too
(`{"error": ...}` or, for config, `{"errors": [...]}` with one line per problem).
`POST /api/v1/certificates` is the exception: it takes an instance's token (from the
runtime, granting one SPIFFE ID), never the API token.

    GET    /api/v1/status                          resources, config errors, proxies, instances
    GET    /api/v1/resources?kind=&namespace=&name=
                                                   (and what the Knative controller made:
                                                   Revisions, each Service's Configuration
                                                   and Route)
    POST   /api/v1/apply?source=NAME               YAML body; all or nothing
    POST   /api/v1/delete?source=NAME              YAML body; deletes those resources
    DELETE /api/v1/resources/{kind}/{namespace}/{name}
                                                   (a Knative Service's revisions go with it;
                                                   a revision only when no route needs it)
    GET    /api/v1/proxies                         connected proxies and their xDS sync state
    GET    /api/v1/analyze                         findings of `model.analyze`
    PUT    /api/v1/instances/{id}                  register a live instance (JSON body)
    DELETE /api/v1/instances/{id}
    GET    /api/v1/node/config?since=V&wait=S      what node agents run from (Workloads,
                                                   Services, Gateways, ProxyConfigs), once the
                                                   config version is not V (waits up to S s)
    PUT    /api/v1/nodes/{node}                    a node agent's whole report: its instances
                                                   (registered), their status, gateway URLs
    PUT    /api/v1/nodes/{node}/concurrency        {"instances": {id: n}}: requests in flight
                                                   at each Knative revision's instance
    GET    /api/v1/serving/revisions               each running Knative revision's scale, load,
                                                   panic and the activator's place
    POST   /api/v1/serving/activate                {"namespace", "revision"}: an instance now
                                                   (a request waits at the activator)
    GET    /api/v1/pipelines/...                   Tekton: runs' config for node agents, their
                                                   reports, runs with status, cancel, a
                                                   run's task graph, a step's log
                                                   (`api_pipelines`)
    POST   /api/v1/triggers/sink/{ns}/{name}       Tekton Triggers: a listener's webhook, with
                                                   the listener's token (`api_triggers`)
    GET    /api/v1/triggers/eventlisteners         EventListeners: URL, availability
    GET    /api/v1/gitops/applications[/{ns}/{name}]
                                                   Argo CD Applications with status; POST
                                                   .../sync, GET .../diff (`api_gitops`)
    POST   /api/webhook                            a git push: refresh its Applications now
                                                   (signed by Argo CD's webhook secret, or
                                                   the bearer token; `api_gitops`)
    POST   /api/v1/intercepts, PUT|DELETE .../{id} `ami intercept`: start, renew, end
                                                   (`api_intercepts`)
    POST   /api/v1/certificates                    {"csr": PEM}, with an instance token
                                                   (a gateway's may add "dns_names", "ip_addresses")
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from amimesh.config.store import API_SOURCE, Key
from amimesh.controlplane import (
    api_gitops,
    api_intercepts,
    api_json,
    api_kinds,
    api_metrics,
    api_pipelines,
    api_traces,
    api_triggers,
    api_yaml,
    nodes,
)
from amimesh.controlplane.serving import SOURCE as SERVING_SOURCE
from amimesh.controlplane.serving import RevisionInUse
from amimesh.dashboard import web as dashboard_web
from amimesh.identity import csr as csr_mod
from amimesh.identity.ca import CaError
from amimesh.identity.service import NamesNotGranted, NotGranted, UnknownToken
from amimesh.model import env_from
from amimesh.resources import ParseResult, Service, Workload
from amimesh.resources import knative_serving as ks
from amimesh.resources.istio_gateway import Gateway
from amimesh.serving import objects

if TYPE_CHECKING:
    from amimesh.controlplane.server import ControlPlane

# What a node agent runs from, as (API group, kind): Workloads (the instances), Services
# (their ports) and Gateways (the ingress gateway's ports and credentials). Routing and
# policy reach the proxies by xDS; the node neither needs nor parses them.
# Istio's ProxyConfig: how the node agent runs the Envoys it selects.
ISTIO_PROXY_CONFIG = ("networking.istio.io", "ProxyConfig")
NODE_KINDS = frozenset(
    [*((m.API_GROUP, m.KIND) for m in (Workload, Service, Gateway)), ISTIO_PROXY_CONFIG]
)

# Deleting one of these (through the API) deletes the revisions it made.
OWNERS_OF_REVISIONS = frozenset((ks.Service.qualified_kind(), ks.Configuration.qualified_kind()))

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY = 32 * 1024 * 1024
CERTIFICATES = f"{PREFIX}/certificates"
MAX_CSR_BODY = 64 * 1024
# The longest a node agent's config request waits for a change.
MAX_NODE_WAIT_S = 60.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200, dumps: Callable[[Any], str] | None = None) -> web.Response:
    return web.json_response(
        data, status=status, dumps=dumps or (lambda d: json.dumps(d, indent=1))
    )


def _errors(errors: list[str], status: int = 400, **extra: Any) -> web.Response:
    return _json({**extra, "errors": errors}, status)


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# Requests that change nothing: the only ones the dashboard's cookie may authorize.
_COOKIE_METHODS = frozenset({"GET", "HEAD"})


def _same_token(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(errors="replace"), token.encode())


def _auth_middleware(token: str) -> Any:
    """Every request needs the bearer token, except the certificates endpoint (it
    checks instance tokens itself) and the dashboard's: `GET /dashboard/?token=T`
    signs a browser in (an HttpOnly, SameSite=Strict cookie holding the token, then a
    redirect that drops the token from the URL), and that cookie then authorizes GET
    and HEAD requests only, so no state-changing request can ride on it."""
    expected = f"Bearer {token}".encode()
    cookie = dashboard_web.cookie_name(token)

    def authorized(request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").encode(errors="replace")
        if hmac.compare_digest(given, expected):
            return True
        return request.method in _COOKIE_METHODS and _same_token(
            request.cookies.get(cookie, ""), token
        )

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            request.path in dashboard_web.SIGN_IN_PATHS
            and request.method in _COOKIE_METHODS
            and "token" in request.query
        ):
            if _same_token(request.query["token"], token):
                return dashboard_web.sign_in(token)
            return dashboard_web.unauthorized(request, "the token in the URL is not the mesh's")
        # The certificates endpoint, a listener's sink and the git webhook check their own.
        own_token = request.path in (CERTIFICATES, api_gitops.WEBHOOK) or request.path.startswith(
            api_triggers.SINK
        )
        if not own_token and not authorized(request):
            if dashboard_web.is_dashboard(request.path):
                return dashboard_web.unauthorized(request, "not signed in")
            return web.json_response(
                {"error": "unauthorized: send Authorization: Bearer <token of the mesh>"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            return await handler(request)
        except web.HTTPException as err:
            if err.status < 400:
                raise
            return web.json_response({"error": err.reason}, status=err.status)

    return auth


class Api:
    """The request handlers, over one control plane."""

    def __init__(self, cp: ControlPlane, token: str = "") -> None:
        self.cp = cp
        self._token = token

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{PREFIX}/status", self.status),
            web.get(f"{PREFIX}/resources", self.list_resources),
            web.post(f"{PREFIX}/apply", self.apply),
            web.post(f"{PREFIX}/delete", self.delete_documents),
            web.delete(f"{PREFIX}/resources/{{kind}}/{{namespace}}/{{name}}", self.delete_one),
            web.get(f"{PREFIX}/proxies", self.proxies),
            web.get(f"{PREFIX}/analyze", self.analyze),
            web.put(f"{PREFIX}/instances/{{id}}", self.put_instance),
            web.delete(f"{PREFIX}/instances/{{id}}", self.delete_instance),
            web.get(f"{PREFIX}/node/config", self.node_config),
            web.put(f"{PREFIX}/nodes/{{node}}", self.put_node),
            web.put(f"{PREFIX}/nodes/{{node}}/concurrency", self.put_concurrency),
            web.get(f"{PREFIX}/serving/revisions", self.serving_revisions),
            web.post(f"{PREFIX}/serving/activate", self.activate),
            web.post(CERTIFICATES, self.certificates),
            *api_pipelines.PipelinesApi(self.cp).routes(),
            *api_triggers.TriggersApi(self.cp).routes(),
            *api_gitops.GitOpsApi(self.cp, self._token).routes(),
            *api_intercepts.InterceptsApi(self.cp).routes(),
        ]

    # --- reading -----------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        store = self.cp.store
        return _json(
            {
                "resources": len(store.resources()),
                "config_errors": [str(e) for e in store.errors()],
                "synced": self.cp.plane_ready and self.cp.xds.is_synced(),
                "proxies": self._proxies(),
                "instances": self._instances(),
            }
        )

    def _proxies(self) -> list[dict[str, Any]]:
        if not self.cp.plane_ready:  # xDS is still loading: no proxy connected yet
            return []
        by_id = {p.id: p for p in self.cp.xds.proxies()}
        pending = self.cp.xds.pending
        out = [api_json.proxy_json(s, by_id.get(s.proxy_id)) for s in self.cp.xds.status()]
        for proxy in out:
            # A regeneration on its way may change what any proxy should hold.
            proxy["synced"] = proxy["synced"] and not pending
        return out

    def _instances(self) -> list[dict[str, Any]]:
        rows = self.cp.nodes.status_rows()
        if rows is not None:
            return rows
        instances = sorted(self.cp.store.instances(), key=lambda i: (i.namespace, i.id))
        return [api_json.instance_json(i) for i in instances]

    async def proxies(self, request: web.Request) -> web.Response:
        synced = self.cp.plane_ready and self.cp.xds.is_synced()
        return _json({"synced": synced, "proxies": self._proxies()})

    async def list_resources(self, request: web.Request) -> web.Response:
        q = request.query
        group_kind = None
        if q.get("kind"):
            try:
                group_kind = api_kinds.resolve(q["kind"])
            except api_kinds.UnknownKindName as err:
                return _errors([str(err)])
        store, serving = self.cp.store, self.cp.serving

        def wanted(ns: str, name: str) -> bool:
            return (not q.get("namespace") or ns == q["namespace"]) and (
                not q.get("name") or name == q["name"]
            )

        found: list[tuple[Key, dict[str, Any]]] = []
        for r in store.resources():
            if group_kind is not None and (r.API_GROUP, r.kind) != group_kind:
                continue
            if not wanted(r.namespace, r.name):
                continue
            item = api_json.resource_json(r, store.source_of(r.key))
            status = (
                serving.status_of(r.key)
                or self.cp.eventing.status_of(r.key)
                or self.cp.gateway_api.status_of(r.key)
                or self.cp.httpproxy.status_of(r.key)
            )
            if status is None and "gitops" in self.cp.__dict__:
                status = self.cp.gitops.status_of(r.key)
            if status is not None:
                item["status"] = status
            created = serving.created_of(r.key)
            if created is not None:
                item["metadata"].setdefault("creationTimestamp", objects.timestamp(created))
            found.append((r.key, item))
        # What the controller made (Revisions; each Knative Service's Configuration
        # and Route), listed beside what was written; a written one of a name wins.
        taken = {key for key, _ in found}
        for obj in serving.objects():
            meta = obj["metadata"]
            key = (obj["kind"], meta["namespace"], meta["name"])
            if group_kind not in (None, (ks.SERVING_GROUP, obj["kind"])) or key in taken:
                continue
            if wanted(meta["namespace"], meta["name"]):
                found.append((key, {**obj, "source": SERVING_SOURCE}))
        items = [item for _, item in sorted(found, key=lambda pair: pair[0])]
        return _json({"kind": group_kind[1] if group_kind else None, "items": items})

    async def serving_revisions(self, request: web.Request) -> web.Response:
        rows = [s.to_json() for s in self.cp.serving.scaling()]
        return _json({"revisions": rows})

    async def analyze(self, request: web.Request) -> web.Response:
        store = self.cp.store
        findings = []
        from amimesh.model import analyze  # every kind's checks: loaded on first use

        for f in analyze.analyze(self.cp.snapshot):
            findings.append({**f.to_dict(), "source": store.source_of(f.key)})
        return _json({"findings": findings})

    # --- writing -----------------------------------------------------------------------

    async def _parse(self, request: web.Request) -> tuple[str, ParseResult]:
        source = request.query.get("source") or "request"
        return source, await api_yaml.parse_body(request, source)

    async def apply(self, request: web.Request) -> web.Response:
        source, result = await self._parse(request)
        if result.ok and not result.resources:
            return _errors([f"{source}: no resources to apply"])
        store = self.cp.store
        actions = []
        for r in result.resources:
            before = store.get(r.key)
            if before is None:
                actions.append("created")
            elif before == r and store.source_of(r.key) == API_SOURCE:
                actions.append("unchanged")
            else:
                actions.append("configured")
        errors = store.apply(result)
        if errors:
            return _errors([str(e) for e in errors])
        refs = [r.ref for r in result.resources]
        results = [{"resource": ref, "action": a} for ref, a in zip(refs, actions, strict=True)]
        log.info("applied from %s: %s", source, ", ".join(refs))
        return _json({"applied": refs, "results": results})

    def _delete(self, keys: list[Key]) -> tuple[int, dict[str, Any]]:
        store = self.cp.store
        gone = set(store.delete(keys))
        deleted, notes, errors, status = [], [], [], 200
        for key in keys:
            ref = "/".join(key)
            source = store.source_of(key)
            if key in gone:
                deleted.append(ref)
                if source is not None:
                    notes.append(f"{ref}: the version in {source} is in force again")
                elif key[0] in OWNERS_OF_REVISIONS:
                    revisions = self.cp.serving.forget(key[1], key[2])
                    if revisions:
                        notes.append(
                            f"{ref}: its revisions deleted with it: {', '.join(revisions)}"
                        )
            elif key[0] == "Revision" and source is None:
                # One the controller made: deleted there, unless a route needs it.
                try:
                    found = self.cp.serving.delete_revision(key[1], key[2])
                except RevisionInUse as err:
                    errors.append(str(err))
                    status = 409
                    continue
                if found:
                    deleted.append(ref)
                else:
                    errors.append(f"{ref} not found")
                    status = 404 if status == 200 else status
            elif source is not None:
                errors.append(
                    f"{ref} is defined in {source}: it cannot be deleted through the API; "
                    "edit or remove that file"
                )
                status = 409
            else:
                errors.append(f"{ref} not found")
                status = 404 if status == 200 else status
        if deleted:
            log.info("deleted: %s", ", ".join(deleted))
        return status, {"deleted": deleted, "notes": notes, "errors": errors}

    async def delete_documents(self, request: web.Request) -> web.Response:
        _source, result = await self._parse(request)
        if not result.ok:
            return _errors([str(e) for e in result.errors])
        status, body = self._delete([r.key for r in result.resources])
        return _json(body, status)

    async def delete_one(self, request: web.Request) -> web.Response:
        m = request.match_info
        try:
            kind = api_kinds.key_kind(api_kinds.resolve(m["kind"]))
        except api_kinds.UnknownKindName as err:
            return _errors([str(err)])
        status, body = self._delete([(kind, m["namespace"], m["name"])])
        return _json(body, status)

    async def put_instance(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["id"]
        try:
            data = json.loads(await request.text())
        except ValueError as err:
            return _errors([f"body: not JSON: {err}"])
        try:
            instance = api_json.instance_from_json(instance_id, data)
        except api_json.BadBody as err:
            return _errors(err.errors)
        self.cp.store.register_instance(instance)
        return _json({"instance": api_json.instance_json(instance)})

    async def delete_instance(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["id"]
        if not any(i.id == instance_id for i in self.cp.store.instances()):
            return _errors([f"instance {instance_id} not found"], 404)
        self.cp.store.deregister_instance(instance_id)
        return _json({"deregistered": instance_id})

    # --- node agents -------------------------------------------------------------------

    async def node_config(self, request: web.Request) -> web.Response:
        """The resources a node agent runs from (`NODE_KINDS`), once the config
        version differs from `since`."""
        try:
            since = int(request.query.get("since", "-1"))
            wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_NODE_WAIT_S)
        except ValueError:
            return _errors(["since and wait: want numbers"])
        version = await self.cp.wait_config(since, wait)
        store = self.cp.store
        every = store.resources()
        wanted = [r for r in every if (r.API_GROUP, r.KIND) in NODE_KINDS]
        # SinkBindings' K_SINK in the Workloads they name, as the node agent runs them.
        if any((r.API_GROUP, r.KIND) == ("sources.knative.dev", "SinkBinding") for r in every):
            from amimesh.eventing import binding  # eventing's modules when there is one

            wanted = binding.bound(wanted, every)
        # Variables from ConfigMaps and Secrets, read for the node agents alone: a
        # Workload one of whose keys is missing is not run (`ami analyze` says why).
        wanted, _missing = env_from.resolved(wanted, every)
        items = [api_json.resource_json(r) for r in sorted(wanted, key=lambda r: r.key)]
        return _json({"version": version, "resources": items}, dumps=json.dumps)

    async def put_node(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        try:
            data = json.loads(await request.text())
        except ValueError as err:
            return _errors([f"body: not JSON: {err}"])
        try:
            report = nodes.parse_report(data)
        except api_json.BadBody as err:
            return _errors(err.errors)
        self.cp.nodes.report(node, report)
        return _json({"node": node, "instances": len(report.instances)})

    async def put_concurrency(self, request: web.Request) -> web.Response:
        """A node agent's requests in flight and per second, per instance:
        {"instances": {id: n}, "rps": {id: r}}."""
        try:
            data = json.loads(await request.text())
        except ValueError as err:
            return _errors([f"body: not JSON: {err}"])
        if not isinstance(data, dict):
            return _errors(['body: want {"instances": {"<instance id>": <requests in flight>}}'])
        parsed: list[dict[str, float]] = []
        for key in ("instances", "rps"):
            values = data.get(key, {})
            if not isinstance(values, dict) or len(values) > nodes.MAX_STATUS_ROWS:
                return _errors([f'{key}: want {{"<instance id>": <number>}}'])
            clean: dict[str, float] = {}
            for iid, n in values.items():
                if not isinstance(n, int | float) or isinstance(n, bool) or not 0 <= n < 1e9:
                    return _errors([f"{key}.{iid}: want a number of requests, at least 0"])
                clean[str(iid)] = float(n)
            parsed.append(clean)
        self.cp.serving.observe(request.match_info["node"], parsed[0], parsed[1])
        return _json({"instances": len(parsed[0])})

    async def activate(self, request: web.Request) -> web.Response:
        """The activator holds a request for a revision with no ready instance:
        {"namespace", "revision"} gets it an instance now."""
        try:
            data = json.loads(await request.text())
        except ValueError as err:
            return _errors([f"body: not JSON: {err}"])
        ns = data.get("namespace") if isinstance(data, dict) else None
        revision = data.get("revision") if isinstance(data, dict) else None
        if not isinstance(ns, str) or not isinstance(revision, str):
            return _errors(['body: want {"namespace": "...", "revision": "..."}'])
        if not self.cp.serving.activate(ns, revision):
            return _json({"error": f"no revision {ns}/{revision} takes traffic"}, 404)
        return _json({"namespace": ns, "revision": revision})

    # --- identity ----------------------------------------------------------------------

    async def certificates(self, request: web.Request) -> web.Response:
        """Sign an agent's CSR for the identity its instance token grants."""
        token = _bearer(request)
        if not token:
            return _unauthorized("send Authorization: Bearer <the instance's token>")
        if self._token and hmac.compare_digest(token.encode(), self._token.encode()):
            # The API token administers the mesh; it is nobody's identity.
            return _json(
                {
                    "error": "the API token cannot get certificates: use the "
                    "instance token the runtime gave the agent"
                },
                403,
            )
        if request.content_length is not None and request.content_length > MAX_CSR_BODY:
            return _json({"error": f"body: larger than {MAX_CSR_BODY} bytes"}, 413)
        try:
            data = json.loads(await request.text())
        except ValueError as err:
            return _json({"error": f"body: not JSON: {err}"}, 400)
        if not isinstance(data, dict) or not isinstance(data.get("csr"), str):
            return _json({"error": 'body: want {"csr": "<PEM certificate request>"}'}, 400)
        names = _server_names(data)
        if isinstance(names, str):
            return _json({"error": names}, 400)
        try:
            issued = self.cp.identity.sign(
                token, data["csr"], dns_names=names[0], ip_addresses=names[1]
            )
        except UnknownToken:
            return _unauthorized("unknown or revoked instance token")
        except (NotGranted, NamesNotGranted) as err:
            log.warning("certificate refused: %s", err)
            return _json({"error": str(err)}, 403)
        except csr_mod.BadCsr as err:
            return _json({"error": str(err)}, 400)
        except CaError as err:
            log.error("cannot sign: %s", err)
            return _json({"error": str(err)}, 500)
        return _json(issued.to_json())


_LABEL = r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
MAX_SERVER_NAMES = 32


def _server_names(data: dict[str, Any]) -> tuple[list[str], list[str]] | str:
    """The optional `dns_names` and `ip_addresses` of a certificate request (a
    gateway's), or what is wrong with them."""
    out: list[list[str]] = []
    for key in ("dns_names", "ip_addresses"):
        values = data.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return f"body: {key} must be a list of strings"
        if len(values) > MAX_SERVER_NAMES:
            return f"body: {key}: at most {MAX_SERVER_NAMES}"
        for v in values:
            if key == "dns_names" and (len(v) > 253 or not _DNS_NAME.match(v)):
                return f"body: dns_names: {v!r} is not a DNS name"
            if key == "ip_addresses":
                try:
                    ipaddress.ip_address(v)
                except ValueError:
                    return f"body: ip_addresses: {v!r} is not an IP address"
        out.append(values)
    return out[0], out[1]


def _unauthorized(message: str) -> web.Response:
    return web.json_response(
        {"error": f"unauthorized: {message}"}, status=401, headers={"WWW-Authenticate": "Bearer"}
    )


def make_app(cp: ControlPlane, token: str) -> web.Application:
    """The API application (for a runner, or aiohttp's test client)."""
    if not token:
        raise ValueError("the HTTP API needs a token")
    app = web.Application(middlewares=[_auth_middleware(token)], client_max_size=MAX_BODY)
    app.add_routes(Api(cp, token).routes())
    app.add_routes(api_metrics.routes(cp))
    app.add_routes(api_traces.routes(cp))
    app.add_routes(dashboard_web.routes())
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiServer:
    """Serves `make_app` on a host and port until stopped."""

    def __init__(self, cp: ControlPlane, token: str) -> None:
        self._app = make_app(cp, token)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on `host:port` (0 picks a free port); returns the bound port."""
        if not is_loopback(host):
            log.warning("HTTP API on %s is reachable off this host, without TLS", host)
        # A short shutdown: clients of the API make quick requests, none long-lived.
        runner = web.AppRunner(
            self._app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("HTTP API listening on %s:%d", host, self.port)
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        self.port = 0
        if runner is not None:
            await runner.cleanup()
