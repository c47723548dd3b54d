"""Deliveries straight to a subscriber's inbound sidecars, past the broker's own.

A delivery through the broker's sidecar costs a whole proxy hop (its outbound
listener: parse, route, pick an instance, open mutual TLS, count). For a subscriber
on the mesh's default route (`addressing.direct_cluster`: nothing but the mesh's
defaults would happen on that hop) the broker does that hop's work itself:

- its identity: the broker's own certificate, served by its node agent on
  `AMI_SDS_SOCKET` (`identity.workload_sds`), so the subscriber's sidecar sees the
  broker's SPIFFE ID as it would through the sidecar: its AuthorizationPolicies, its
  metrics (`source_principal`, and `x-ami-peer` as the sidecar sets it) apply;
- the instances: the endpoints its sidecar has for the subscriber's cluster (those it
  reaches over the mesh's mutual TLS, not known unhealthy), and the SPIFFE IDs its
  sidecar would accept from them (the cluster's `match_typed_subject_alt_names`),
  read from the sidecar's admin API (`AMI_PROXY_ADMIN_PORT`, its config of those
  clusters alone) every `POLL_S`: a peer whose certificate names none of them (a
  port taken over by another workload meanwhile) is not sent to;
- the mesh's default retries: a 503 or a refused connection is tried again up to
  twice, on another instance when there is one, after Envoy's jittered back-off.

Until the identity and the endpoints are there, or when no instance can be reached
at all, a delivery goes through the sidecar as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import re
import ssl
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from amimesh.eventing import http1
from amimesh.identity.workload_sds import WorkloadIdentity

log = logging.getLogger(__name__)

POLL_S = 1.0
MAX_ADMIN_BYTES = 64 << 20  # the sidecar's /clusters answer
MESH_RETRIES = 2  # the mesh's default route: a 503 or a refused connection, twice more
BACKOFF_BASE_S = 0.025  # Envoy's default retry back-off: 25 ms, at most ten times that
PEER_HEADER = "x-ami-peer"


def healthy_endpoints(
    dump: Mapping[str, Any], names: Iterable[str]
) -> dict[str, list[tuple[str, int]]]:
    """The endpoints (address, port) of the clusters `names` that the sidecar reaches
    over the mesh's mutual TLS (`tlsMode: istio`) and that are not known unhealthy,
    from Envoy's `/config_dump?resource=dynamic_endpoint_configs&include_eds`."""
    wanted = set(names)
    out: dict[str, list[tuple[str, int]]] = {name: [] for name in wanted}
    for config in dump.get("configs") or ():
        assignment = config.get("endpoint_config") or {}
        name = assignment.get("cluster_name")
        if name not in wanted:
            continue
        for group in assignment.get("endpoints") or ():
            for lb in group.get("lb_endpoints") or ():
                if lb.get("health_status", "UNKNOWN") not in ("UNKNOWN", "HEALTHY"):
                    continue
                meta = (lb.get("metadata") or {}).get("filter_metadata") or {}
                if (meta.get("envoy.transport_socket_match") or {}).get("tlsMode") != "istio":
                    continue
                address = ((lb.get("endpoint") or {}).get("address") or {}).get(
                    "socket_address"
                ) or {}
                if address.get("address") and address.get("port_value"):
                    out[name].append((str(address["address"]), int(address["port_value"])))
    return out


def peer_identities(dump: Mapping[str, Any], names: Iterable[str]) -> dict[str, frozenset[str]]:
    """The SPIFFE IDs the sidecar accepts from the mesh's endpoints of the clusters
    `names` (their `tlsMode: istio` transport socket), from Envoy's
    `/config_dump?resource=dynamic_active_clusters`. A cluster that names them other
    than exactly (a prefix, a pattern) gets none: it is not reached straight."""
    wanted = set(names)
    out: dict[str, frozenset[str]] = {}
    for config in dump.get("configs") or ():
        cluster = config.get("cluster") or {}
        name = cluster.get("name")
        if name not in wanted:
            continue
        sockets = [
            m.get("transport_socket") or {}
            for m in cluster.get("transport_socket_matches") or ()
            if (m.get("match") or {}).get("tlsMode") == "istio"
        ] or [cluster.get("transport_socket") or {}]
        ids: set[str] = set()
        exact = True
        for socket in sockets:
            common = (socket.get("typed_config") or {}).get("common_tls_context") or {}
            combined = common.get("combined_validation_context") or {}
            validation = combined.get("default_validation_context") or {}
            for san in validation.get("match_typed_subject_alt_names") or ():
                value = (san.get("matcher") or {}).get("exact")
                if san.get("san_type") != "URI" or not isinstance(value, str):
                    exact = False
                else:
                    ids.add(value)
        out[name] = frozenset(ids) if exact else frozenset()
    return out


class Direct:
    """The way straight to the subscribers of `clusters`; `run` until cancelled."""

    def __init__(
        self,
        clusters: Iterable[str],
        admin_port: int,
        sds_socket: str,
        peer: str,
        client: http1.Client,
    ) -> None:
        self.clusters = frozenset(clusters)
        self.admin_port = admin_port
        self.peer = peer
        self._client = client
        self._identity = WorkloadIdentity(sds_socket, name="broker", on_change=self._renewed)
        self._endpoints: dict[str, list[tuple[str, int]]] = {}
        self._peers: dict[str, frozenset[str]] = {}
        self._turn = itertools.count()
        self._context: ssl.SSLContext | None = None

    def _renewed(self, context: ssl.SSLContext) -> None:
        old, self._context = self._context, context
        if old is not None:
            self._client.forget(old)

    async def run(self) -> None:
        identity = asyncio.create_task(self._identity.run(), name="broker-identity")
        try:
            while True:
                try:
                    clusters = await self._admin(self._dump_path("dynamic_active_clusters"))
                    self._peers = peer_identities(clusters, self.clusters)
                    endpoints = await self._admin(
                        self._dump_path("dynamic_endpoint_configs") + "&include_eds"
                    )
                    self._endpoints = healthy_endpoints(endpoints, self.clusters)
                except (OSError, ValueError, TimeoutError) as e:
                    log.debug("the sidecar's endpoints not read: %s", e)
                await asyncio.sleep(POLL_S)
        finally:
            identity.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await identity

    def _dump_path(self, resource: str) -> str:
        """The sidecar's config of `resource` kind, for our clusters only."""
        pattern = urllib.parse.quote(f"^({'|'.join(re.escape(c) for c in sorted(self.clusters))})$")
        return f"/config_dump?resource={resource}&name_regex={pattern}"

    async def _admin(self, path: str) -> Mapping[str, Any]:
        """A JSON answer of the sidecar's admin API."""
        answer = await http1.get(
            "127.0.0.1", self.admin_port, path, limit=MAX_ADMIN_BYTES, timeout_s=5
        )
        if answer.status != 200:
            raise ValueError(f"the sidecar's {path}: status {answer.status}")
        if answer.body is None:
            raise ValueError(f"the sidecar's {path} is too large")
        found = json.loads(answer.body)
        if not isinstance(found, dict):
            raise ValueError(f"the sidecar's {path} is not an object")
        return found

    def routes(self, cluster: str) -> list[http1.Via]:
        """Where a delivery to `cluster` may go, in the order to try (a different
        first instance each time); none until the identity, the endpoints and their
        identities are known."""
        context = self._context
        endpoints = self._endpoints.get(cluster) or []
        peers = self._peers.get(cluster) or frozenset()
        if context is None or not endpoints or not peers:
            return []
        start = next(self._turn) % len(endpoints)
        ordered = endpoints[start:] + endpoints[:start]
        return [http1.Via(host, port, context, peers) for host, port in ordered]

    async def post(
        self,
        cluster: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        *,
        timeout_s: float,
        limit: int,
    ) -> http1.Answer | None:
        """POST straight to `cluster`'s instances with the mesh's default retries; None
        when no instance could be reached (the caller goes through the sidecar).
        Raises http1.NoAnswer when one took the request and gave no answer."""
        routes = self.routes(cluster)
        if not routes:
            return None
        headers = {**headers, PEER_HEADER: self.peer}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        answer: http1.Answer | None = None
        for attempt in range(1 + MESH_RETRIES):
            if attempt:
                cap = BACKOFF_BASE_S * min(10, 2**attempt)
                await asyncio.sleep(random.uniform(0, cap))
            via = routes[attempt % len(routes)]
            left = deadline - loop.time()
            if left <= 0:
                raise http1.NoAnswer("timed out")
            try:
                answer = await self._client.post(
                    url, headers, body, timeout_s=left, limit=limit, via=via
                )
            except http1.NotConnected as e:
                log.debug("delivery to %s:%d: not connected (%s)", via.host, via.port, e)
                continue
            if answer.status != 503:
                return answer
        return answer  # the last 503, or None: nothing reached
