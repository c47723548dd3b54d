"""EnvoyFilter patches applied to one proxy's generated listeners, routes and clusters.

`apply(filters, kind, listeners, routes, clusters)` returns patched copies (the inputs,
shared with other proxies, are never changed). Patches apply in the filters' order
(`model.sidecars.envoy_filters`), each filter's in its own order, as Istio does.

How Istio's match fields meet Ami's names (docs/sidecar-envoyfilter.md):

- context: a sidecar's `inbound|PORT` listeners (and their inline route tables, and
  `inbound|...` clusters) are SIDECAR_INBOUND; its `outbound` and `upstream|PORT|HOST`
  listeners, RDS tables and other clusters SIDECAR_OUTBOUND; all of a gateway's,
  GATEWAY. ANY matches all.
- listener `portNumber`: the PORT of `inbound|PORT` (the workload port),
  `upstream|PORT|HOST` or `gateway|PORT` (the Gateway server's port); `outbound` (the
  one HTTP proxy listener for every port) matches only a match without portNumber.
  Listener `name`: Ami's own name, or Istio's `ADDRESS_PORT` (read as portNumber),
  `virtualInbound` (every inbound listener), `virtualOutbound` (`outbound`).
- filter names: Envoy's canonical names; the deprecated short ones Istio's older
  examples use (`envoy.http_connection_manager`, `envoy.router`, ...) are read as them.
- routeConfiguration: `name` Ami's table name (`outbound`, `upstream|...`,
  `http.PORT`, `inbound|PORT`) or a port number; `portNumber` the port of the
  table's virtual hosts (`HOST:PORT`); vhost names are `HOST:PORT` (outbound,
  gateway) and `inbound|http|PORT` (inbound), as Istio names them.
- cluster: `name`, or `service` / `portNumber` / `subset` read from Istio's cluster
  naming `outbound|PORT|SUBSET|HOST`.

Operations: MERGE merges the value into the match (typed configs of one type merged
field by field, repeated fields appended); ADD appends; REMOVE drops the match;
INSERT_BEFORE / INSERT_AFTER place the value next to the matched filter or route (at
the front / the end when the match names none); INSERT_FIRST at the front; REPLACE
swaps the matched filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from amimesh.resources import envoy_values
from amimesh.resources import istio_envoyfilter as ef
from amimesh.translate import names

Listener: TypeAlias = listener_pb2.Listener
FilterChain: TypeAlias = listener_components_pb2.FilterChain
RouteConfiguration: TypeAlias = route_pb2.RouteConfiguration
Cluster: TypeAlias = cluster_pb2.Cluster
HCM_FILTER = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"
RBAC = "envoy.filters.http.rbac"
M = TypeVar("M", bound=Message)

# Deprecated filter names Istio still reads, to Envoy's canonical ones.
CANONICAL = {
    "envoy.http_connection_manager": HCM_FILTER,
    "envoy.tcp_proxy": "envoy.filters.network.tcp_proxy",
    "envoy.router": "envoy.filters.http.router",
    "envoy.cors": "envoy.filters.http.cors",
    "envoy.fault": "envoy.filters.http.fault",
    "envoy.lua": "envoy.filters.http.lua",
    "envoy.ext_authz": "envoy.filters.http.ext_authz",
    "envoy.rate_limit": "envoy.filters.http.ratelimit",
    "envoy.filters.http.rate_limit": "envoy.filters.http.ratelimit",
    "envoy.grpc_web": "envoy.filters.http.grpc_web",
    "envoy.health_check": "envoy.filters.http.health_check",
    "envoy.listener.tls_inspector": "envoy.filters.listener.tls_inspector",
}


def canonical(name: str) -> str:
    return CANONICAL.get(name, name)


@dataclass(frozen=True)
class Patch:
    """One config patch, its value parsed (None for REMOVE)."""

    apply_to: str
    match: ef.ObjectMatch
    operation: str
    value: Message | None
    filter_class: str | None = None


def patches(filters: Iterable[ef.EnvoyFilter]) -> list[Patch]:
    """The patches of `filters`, in order; values that do not parse are left out (the
    store refuses such a filter, so none reaches here)."""
    out: list[Patch] = []
    for f in filters:
        for p in f.spec.configPatches:
            value = None
            if p.patch.value is not None:
                try:
                    value = envoy_values.parse(p.applyTo, p.patch.value)
                except ValueError:
                    continue
            cls = p.patch.filterClass if p.patch.filterClass != "UNSPECIFIED" else None
            match = p.match or ef.ObjectMatch()
            out.append(Patch(p.applyTo, match, p.patch.operation, value, cls))
    return out


def apply(
    found: Sequence[Patch],
    kind: str,
    listeners: Sequence[Listener],
    routes: Sequence[RouteConfiguration],
    clusters: Sequence[Cluster],
) -> tuple[list[Listener], list[RouteConfiguration], list[Cluster]]:
    """Patched copies of a proxy's (`kind`: sidecar or gateway) resources."""
    ls = [_copy(m) for m in listeners]
    rs = [_copy(m) for m in routes]
    cs = [_copy(m) for m in clusters]
    for p in found:
        if p.apply_to == "CLUSTER":
            cs = _clusters(p, kind, cs)
        elif p.apply_to in ("ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE"):
            for r in rs:
                _route_config(p, kind, r, _route_context(kind), None)
            for listener in ls:
                if _context(kind, listener) != "SIDECAR_INBOUND":
                    continue
                port = listener_port(listener.name)
                for chain in listener.filter_chains:
                    for m in _hcms(chain):
                        if m.config.HasField("route_config"):
                            _route_config(p, kind, m.config.route_config, "SIDECAR_INBOUND", port)
                        m.store()
        else:
            ls = _listeners(p, kind, ls)
    return ls, rs, cs


def _copy(m: M) -> M:
    out = type(m)()
    out.CopyFrom(m)
    return out


# --- merge -----------------------------------------------------------------------


def merge(dst: Message, src: Message) -> None:
    """Merge `src` into `dst` as Istio does: set scalars overwrite, messages merge,
    repeated fields append, map entries are replaced, and an `Any` holding the same
    type as the one it merges into is merged unpacked."""
    for field, value in src.ListFields():
        if field.is_repeated:
            target = getattr(dst, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                for k, v in value.items():
                    if isinstance(v, Message):
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif field.message_type is not None:
                for v in value:
                    target.add().CopyFrom(v)
            else:
                target.extend(value)
        elif field.message_type is not None:
            target = getattr(dst, field.name)
            if field.message_type.full_name == "google.protobuf.Any":
                _merge_any(dst, field.name, value)
            else:
                merge(target, value)
                if not target.ListFields():
                    target.SetInParent()
        else:
            setattr(dst, field.name, value)


def _merge_any(dst: Message, name: str, value: any_pb2.Any) -> None:
    target: any_pb2.Any = getattr(dst, name)
    if not dst.HasField(name) or target.type_url != value.type_url:
        target.CopyFrom(value)
        return
    cls = _message_class(value.type_url)
    if cls is None:
        target.CopyFrom(value)
        return
    a, b = cls(), cls()
    target.Unpack(a)
    value.Unpack(b)
    merge(a, b)
    target.Pack(a)


def _message_class(type_url: str) -> type[Message] | None:
    name = type_url.rpartition("/")[2]
    try:
        envoy_values.known(type_url)
        descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
        cls: type[Message] = message_factory.GetMessageClass(descriptor)
    except (ValueError, KeyError):
        return None
    return cls


# --- contexts and ports ----------------------------------------------------------


def _context(kind: str, listener: Listener) -> str:
    if kind == "gateway":
        return "GATEWAY"
    return "SIDECAR_INBOUND" if listener.name.startswith("inbound|") else "SIDECAR_OUTBOUND"


def _route_context(kind: str) -> str:
    """The context of an RDS table (a sidecar's inbound tables are inline, not RDS)."""
    return "GATEWAY" if kind == "gateway" else "SIDECAR_OUTBOUND"


def _context_ok(match: ef.ObjectMatch, context: str) -> bool:
    return match.context in ("ANY", context)


def listener_port(name: str) -> int | None:
    """The port Istio's `portNumber` matches for one of Ami's listener names."""
    parts = name.split("|")
    if len(parts) >= 2 and parts[0] in ("inbound", "upstream", "gateway") and parts[1].isdigit():
        return int(parts[1])
    return None


def _listener_ok(match: ef.ListenerMatch | None, listener: Listener) -> bool:
    if match is None:
        return True
    port = listener_port(listener.name)
    want = match.portNumber
    name = match.name
    if name is not None:
        head, _, tail = name.rpartition("_")
        if name == "virtualInbound":
            if not listener.name.startswith("inbound|"):
                return False
        elif name == "virtualOutbound":
            if listener.name != names.OUTBOUND_LISTENER:
                return False
        elif head and tail.isdigit():
            if want is not None and want != int(tail):
                return False
            want = int(tail)
        elif name != listener.name:
            return False
    return want is None or port == want


def _chain_ok(match: ef.FilterChainMatch | None, listener: Listener, chain: FilterChain) -> bool:
    if match is None:
        return True
    if match.name is not None and match.name != chain.name:
        return False
    if match.transportProtocol is not None:
        has = chain.filter_chain_match.transport_protocol or "raw_buffer"
        if has != match.transportProtocol:
            return False
    if match.sni is not None and match.sni not in chain.filter_chain_match.server_names:
        return False
    if match.destinationPort is not None and listener_port(listener.name) != match.destinationPort:
        return False
    if match.filter is not None and match.filter.name is not None:
        want = canonical(match.filter.name)
        if not any(canonical(f.name) == want for f in chain.filters):
            return False
    return True


# --- listeners, filter chains, filters --------------------------------------------


def _listeners(p: Patch, kind: str, ls: list[Listener]) -> list[Listener]:
    lm = p.match.listener
    chain_match = lm.filterChain if lm is not None else None

    def hits(listener: Listener) -> bool:
        return _context_ok(p.match, _context(kind, listener)) and _listener_ok(lm, listener)

    if p.apply_to == "LISTENER":
        if p.operation == "ADD":
            if p.value is not None and _kind_ok(kind, p.match.context):
                ls.append(_copy(p.value))
            return ls
        if p.operation == "REMOVE":
            return [x for x in ls if not hits(x)]
        for x in ls:
            if hits(x) and p.value is not None:
                merge(x, p.value)
        return ls
    for listener in ls:
        if not hits(listener):
            continue
        if p.apply_to == "FILTER_CHAIN":
            _filter_chains(p, listener, chain_match)
            continue
        for chain in listener.filter_chains:
            if not _chain_ok(chain_match, listener, chain):
                continue
            filter_match = chain_match.filter if chain_match is not None else None
            if p.apply_to == "NETWORK_FILTER":
                want = canonical(filter_match.name) if filter_match and filter_match.name else None
                _named_list(p, chain.filters, want)
            elif p.apply_to == "HTTP_FILTER":
                if filter_match is not None and filter_match.name is not None:
                    if canonical(filter_match.name) != HCM_FILTER:
                        continue
                sub = filter_match.subFilter if filter_match is not None else None
                want = canonical(sub.name) if sub is not None and sub.name else None
                for m in _hcms(chain):
                    _named_list(p, m.config.http_filters, want)
                    m.store()
    return ls


def _kind_ok(kind: str, context: str) -> bool:
    """Whether an ADD in `context` adds to a proxy of `kind`."""
    if context == "ANY":
        return True
    return (context == "GATEWAY") == (kind == "gateway")


def _filter_chains(p: Patch, listener: Listener, match: ef.FilterChainMatch | None) -> None:
    chains = listener.filter_chains
    if p.operation == "ADD":
        if p.value is not None:
            chains.add().CopyFrom(p.value)
        return
    keep = []
    for chain in chains:
        if _chain_ok(match, listener, chain):
            if p.operation == "REMOVE":
                continue
            if p.value is not None:
                merge(chain, p.value)
        keep.append(_copy(chain))
    del chains[:]
    chains.extend(keep)


@dataclass
class _Hcm:
    """A chain's HTTP connection manager, unpacked; `store` packs it back."""

    holder: Any
    config: Any

    def store(self) -> None:
        self.holder.typed_config.Pack(self.config)


def _hcms(chain: FilterChain) -> list[_Hcm]:
    out = []
    for f in chain.filters:
        if canonical(f.name) == HCM_FILTER and f.typed_config.Is(
            hcm_pb2.HttpConnectionManager.DESCRIPTOR
        ):
            m = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(m)
            out.append(_Hcm(f, m))
    return out


def _named_list(p: Patch, items: Any, want: str | None) -> None:
    """Apply `p` to a repeated field of named filters, `want` being the matched name."""
    at = [i for i, f in enumerate(items) if want is not None and canonical(f.name) == want]
    op, value = p.operation, p.value
    current = [_copy(f) for f in items]
    if op == "REMOVE":
        out = [f for i, f in enumerate(current) if i not in at]
    elif op == "MERGE":
        for i in at:
            assert value is not None
            merge(current[i], value)
        out = current
    elif value is None:
        return
    elif op == "ADD" and p.filter_class is not None:
        at_class = _class_position(current, p.filter_class)
        out = [*current[:at_class], value, *current[at_class:]]
    elif op == "ADD":
        out = [*current, value]
    elif op == "INSERT_FIRST" or (op == "INSERT_BEFORE" and want is None):
        out = [value, *current]
    elif op == "INSERT_AFTER" and want is None:
        out = [*current, value]
    elif not at:
        return  # a named filter that is not there: nothing to place the value by
    elif op == "INSERT_BEFORE":
        out = [*current[: at[0]], value, *current[at[0] :]]
    elif op == "INSERT_AFTER":
        out = [*current[: at[-1] + 1], value, *current[at[-1] + 1 :]]
    else:  # REPLACE
        out = [value if i == at[0] else f for i, f in enumerate(current)]
    del items[:]
    for f in out:
        items.add().CopyFrom(f)


def _class_position(filters: list[Any], filter_class: str) -> int:
    """Where an HTTP filter of Istio's `filterClass` goes: AUTHN before the
    authorization filters, AUTHZ after them, STATS after those too; all before the
    router (Ami's metrics come from access logs, so there is no stats filter)."""
    names_ = [canonical(f.name) for f in filters]
    end = names_.index(ROUTER) if ROUTER in names_ else len(names_)
    if filter_class == "AUTHN":
        authz = [i for i, n in enumerate(names_) if n == RBAC]
        return authz[0] if authz else end
    return end


# --- routes --------------------------------------------------------------------------


def _vhost_port(name: str) -> int | None:
    tail = name.rpartition(":")[2] if ":" in name else name.rpartition("|")[2]
    return int(tail) if tail.isdigit() else None


def _route_config(
    p: Patch, kind: str, r: RouteConfiguration, context: str, port: int | None
) -> None:
    if not _context_ok(p.match, context):
        return
    m = p.match.routeConfiguration
    if m is not None:
        if m.name is not None and m.name != r.name:
            if not (m.name.isdigit() and _has_port(r, int(m.name))):
                return
        if m.gateway is not None and kind != "gateway":
            return
        if m.portNumber is not None and not (port == m.portNumber or _has_port(r, m.portNumber)):
            return
    if p.apply_to == "ROUTE_CONFIGURATION":
        if p.operation == "MERGE" and p.value is not None:
            merge(r, p.value)
        return
    vm = m.vhost if m is not None else None
    want_port = m.portNumber if m is not None and port is None else None

    def vhost_ok(v: rc.VirtualHost) -> bool:
        if want_port is not None and _vhost_port(v.name) != want_port:
            return False
        if vm is None:
            return True
        if vm.name is not None and vm.name != v.name:
            return False
        return vm.domainName is None or vm.domainName in v.domains

    vhosts = r.virtual_hosts
    if p.apply_to == "VIRTUAL_HOST":
        if p.operation == "ADD":
            if p.value is not None:
                vhosts.add().CopyFrom(p.value)
            return
        keep = []
        for v in vhosts:
            if vhost_ok(v):
                if p.operation == "REMOVE":
                    continue
                if p.value is not None:
                    merge(v, p.value)
            keep.append(_copy(v))
        del vhosts[:]
        vhosts.extend(keep)
        return
    route_match = vm.route if vm is not None else None
    for v in vhosts:
        if vhost_ok(v):
            _routes(p, v, route_match)


def _has_port(r: RouteConfiguration, port: int) -> bool:
    return any(_vhost_port(v.name) == port for v in r.virtual_hosts)


_ACTIONS = {"ROUTE": "route", "REDIRECT": "redirect", "DIRECT_RESPONSE": "direct_response"}


def _routes(p: Patch, v: rc.VirtualHost, m: ef.RouteMatch | None) -> None:
    def ok(r: rc.Route) -> bool:
        if m is None:
            return True
        if m.name is not None and m.name != r.name:
            return False
        return m.action == "ANY" or r.WhichOneof("action") == _ACTIONS[m.action]

    op, value = p.operation, p.value
    current = [_copy(r) for r in v.routes]
    at = [i for i, r in enumerate(current) if ok(r)]
    named = m is not None and m.name is not None
    if op == "MERGE":
        for i in at:
            assert value is not None
            merge(current[i], value)
        out = current
    elif op == "REMOVE":
        out = [r for i, r in enumerate(current) if i not in at]
    elif value is None:
        return
    elif op == "ADD" or (op == "INSERT_AFTER" and not named):
        out = [*current, value]
    elif op == "INSERT_FIRST" or (op == "INSERT_BEFORE" and not named):
        out = [value, *current]
    elif not at:
        return
    elif op == "INSERT_BEFORE":
        out = [*current[: at[0]], value, *current[at[0] :]]
    else:  # INSERT_AFTER
        out = [*current[: at[-1] + 1], value, *current[at[-1] + 1 :]]
    del v.routes[:]
    for r in out:
        v.routes.add().CopyFrom(r)


# --- clusters ------------------------------------------------------------------------


def _cluster_context(kind: str, name: str) -> str:
    if kind == "gateway":
        return "GATEWAY"
    return "SIDECAR_INBOUND" if name.startswith("inbound|") else "SIDECAR_OUTBOUND"


def _cluster_ok(m: ef.ClusterMatch | None, name: str) -> bool:
    if m is None:
        return True
    if m.name is not None and m.name != name:
        return False
    if m.service is None and m.portNumber is None and m.subset is None:
        return True
    try:
        _, port, subset, host = names.parse_cluster_name(name)
    except ValueError:
        return False
    if m.service is not None and m.service.lower() != host:
        return False
    if m.portNumber is not None and m.portNumber != port:
        return False
    return m.subset is None or m.subset == subset


def _clusters(p: Patch, kind: str, cs: list[Cluster]) -> list[Cluster]:
    def hits(c: Cluster) -> bool:
        return _context_ok(p.match, _cluster_context(kind, c.name)) and _cluster_ok(
            p.match.cluster, c.name
        )

    if p.operation == "ADD":
        if p.value is not None and _kind_ok(kind, p.match.context):
            cs.append(_copy(p.value))
        return cs
    if p.operation == "REMOVE":
        return [c for c in cs if not hits(c)]
    for c in cs:
        if hits(c) and p.value is not None:
            merge(c, p.value)
    return cs
