"""Tables of what an Envoy really holds, from its admin `/config_dump` and `/clusters`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

from amimesh.cli.render import joined, styled, table


def dump_section(dump: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """The `configs` entry of a /config_dump whose @type ends with `kind`
    (ClustersConfigDump, ListenersConfigDump, RoutesConfigDump, EndpointsConfigDump)."""
    for c in dump.get("configs") or ():
        if str(c.get("@type", "")).endswith("." + kind):
            section: Mapping[str, Any] = c
            return section
    return {}


def _lb_endpoints(assignment: Mapping[str, Any]) -> int:
    return sum(len(g.get("lb_endpoints") or ()) for g in assignment.get("endpoints") or ())


def _endpoint_counts(dump: Mapping[str, Any]) -> dict[str, int]:
    eds = dump_section(dump, "EndpointsConfigDump")
    counts: dict[str, int] = {}
    for group in ("static_endpoint_configs", "dynamic_endpoint_configs"):
        for e in eds.get(group) or ():
            cla = e.get("endpoint_config") or {}
            counts[str(cla.get("cluster_name", ""))] = _lb_endpoints(cla)
    return counts


def _cluster_type(cluster: Mapping[str, Any]) -> str:
    if "cluster_type" in cluster:
        return str(cluster["cluster_type"].get("name", "CUSTOM"))
    return str(cluster.get("type", "STATIC"))  # STATIC is proto's default: left out


def clusters_table(dump: Mapping[str, Any]) -> Table:
    """CLUSTER, TYPE, ENDPOINTS, STATE (static/active/warming), VERSION."""
    section = dump_section(dump, "ClustersConfigDump")
    counts = _endpoint_counts(dump)
    t = table("CLUSTER", "TYPE", "ENDPOINTS", "STATE", "VERSION")
    groups = (
        ("static_clusters", "static"),
        ("dynamic_active_clusters", "active"),
        ("dynamic_warming_clusters", "warming"),
    )
    for group, state in groups:
        for entry in section.get(group) or ():
            c = entry.get("cluster") or {}
            name = str(c.get("name", ""))
            eds_name = (c.get("eds_cluster_config") or {}).get("service_name") or name
            if "load_assignment" in c:
                n = sum(
                    len(g.get("lb_endpoints") or ())
                    for g in c["load_assignment"].get("endpoints") or ()
                )
            else:
                n = counts.get(eds_name, 0)
            kind = _cluster_type(c)
            count = str(n) if kind in ("EDS", "STATIC") or n else "-"
            t.add_row(name, kind, count, state, str(entry.get("version_info") or "-"))
    return t


def _address(address: Mapping[str, Any] | None) -> str:
    sock = (address or {}).get("socket_address") or {}
    if sock:
        return f"{sock.get('address', '')}:{sock.get('port_value', 0)}"
    pipe = (address or {}).get("pipe") or {}
    return str(pipe.get("path", "-"))


def _route_names(listener: Mapping[str, Any]) -> list[str]:
    names = []
    for chain in listener.get("filter_chains") or ():
        for f in chain.get("filters") or ():
            cfg = f.get("typed_config") or {}
            rds = (cfg.get("rds") or {}).get("route_config_name")
            if rds and rds not in names:
                names.append(str(rds))
            inline = (cfg.get("route_config") or {}).get("name")
            if inline and f"{inline} (inline)" not in names:
                names.append(f"{inline} (inline)")
    return names


def listeners_table(dump: Mapping[str, Any]) -> Table:
    """LISTENER, ADDRESS, CHAINS (filter chains), ROUTES (RDS names), STATE, VERSION."""
    section = dump_section(dump, "ListenersConfigDump")
    t = table("LISTENER", "ADDRESS", "CHAINS", "ROUTES", "STATE", "VERSION")
    rows: list[tuple[Mapping[str, Any], str, str]] = []
    for entry in section.get("static_listeners") or ():
        rows.append((entry.get("listener") or {}, "static", "-"))
    for entry in section.get("dynamic_listeners") or ():
        for key, state in (("active_state", "active"), ("warming_state", "warming")):
            s = entry.get(key)
            if s:
                rows.append((s.get("listener") or {}, state, str(s.get("version_info") or "-")))
        if entry.get("error_state"):
            failure = entry["error_state"].get("details", "")
            rows.append(({"name": entry.get("name")}, f"error: {failure}", "-"))
    for listener, state, version in rows:
        t.add_row(
            str(listener.get("name", "")),
            _address(listener.get("address")),
            str(len(listener.get("filter_chains") or ())),
            joined(_route_names(listener)),
            styled(state) if state != "active" else state,
            version,
        )
    return t


def routes_table(dump: Mapping[str, Any], *, max_domains: int = 4) -> Table:
    """ROUTE CONFIG, VIRTUAL HOST, DOMAINS (the first few), ROUTES (count)."""
    section = dump_section(dump, "RoutesConfigDump")
    t = table("ROUTE CONFIG", "VIRTUAL HOST", "DOMAINS", "ROUTES")
    configs = [e.get("route_config") or {} for e in section.get("static_route_configs") or ()]
    configs += [e.get("route_config") or {} for e in section.get("dynamic_route_configs") or ()]
    for rc in configs:
        for vh in rc.get("virtual_hosts") or ():
            domains = [str(d) for d in vh.get("domains") or ()]
            shown = ", ".join(domains[:max_domains])
            if len(domains) > max_domains:
                shown += f" +{len(domains) - max_domains} more"
            t.add_row(
                str(rc.get("name", "")),
                str(vh.get("name", "")),
                shown or "-",
                str(len(vh.get("routes") or ())),
            )
    return t


_FAILURE_FLAGS = {
    "failed_active_health_check": "active health check",
    "failed_outlier_check": "outlier",
    "failed_active_degraded_check": "degraded",
    "pending_dynamic_removal": "pending removal",
    "pending_active_hc": "pending health check",
    "excluded_via_immediate_hc_fail": "immediate hc fail",
    "active_hc_timeout": "health check timeout",
}


def _health(status: Mapping[str, Any]) -> str:
    failed = [why for flag, why in _FAILURE_FLAGS.items() if status.get(flag)]
    if failed:
        return f"UNHEALTHY ({', '.join(failed)})"
    return str(status.get("eds_health_status") or "HEALTHY")


def endpoints_table(clusters: Mapping[str, Any]) -> Table:
    """From Envoy's /clusters?format=json: CLUSTER, ENDPOINT, HEALTH, WEIGHT, LOCALITY."""
    t = table("CLUSTER", "ENDPOINT", "HEALTH", "WEIGHT", "LOCALITY")
    for c in clusters.get("cluster_statuses") or ():
        for h in c.get("host_statuses") or ():
            health = _health(h.get("health_status") or {})
            loc = h.get("locality") or {}
            locality = "/".join(str(loc[k]) for k in ("region", "zone", "sub_zone") if loc.get(k))
            t.add_row(
                str(c.get("name", "")),
                _address(h.get("address")),
                Text(health, style="green" if health == "HEALTHY" else "red"),
                str(h.get("weight", 1)),
                locality or "-",
            )
    return t
