"""Envoy's response flags, as the access log stream reports them, in Envoy's short form.

The stream carries flags as booleans (`envoy.data.accesslog.v3.ResponseFlags`); Istio's
`response_flags` label, and Envoy's `%RESPONSE_FLAGS%`, use short codes joined by
commas, or `-` when none is set. Pure.
"""

from __future__ import annotations

from typing import Any

NO_FLAGS = "-"

# ResponseFlags field -> short code, in the order Envoy prints them.
SHORT_CODES: tuple[tuple[str, str], ...] = (
    ("failed_local_healthcheck", "LH"),
    ("no_healthy_upstream", "UH"),
    ("upstream_request_timeout", "UT"),
    ("local_reset", "LR"),
    ("upstream_remote_reset", "UR"),
    ("upstream_connection_failure", "UF"),
    ("upstream_connection_termination", "UC"),
    ("upstream_overflow", "UO"),
    ("no_route_found", "NR"),
    ("delay_injected", "DI"),
    ("fault_injected", "FI"),
    ("rate_limited", "RL"),
    ("unauthorized_details", "UAEX"),
    ("rate_limit_service_error", "RLSE"),
    ("downstream_connection_termination", "DC"),
    ("upstream_retry_limit_exceeded", "URX"),
    ("stream_idle_timeout", "SI"),
    ("invalid_envoy_request_headers", "IH"),
    ("downstream_protocol_error", "DPE"),
    ("upstream_max_stream_duration_reached", "UMSDR"),
    ("response_from_cache_filter", "RFCF"),
    ("no_filter_config_found", "NFCF"),
    ("duration_timeout", "DT"),
    ("upstream_protocol_error", "UPE"),
    ("no_cluster_found", "NC"),
    ("overload_manager", "OM"),
    ("dns_resolution_failure", "DF"),
    ("downstream_remote_reset", "DR"),
)


_CODE = dict(SHORT_CODES)
_ORDER = {field: i for i, (field, _) in enumerate(SHORT_CODES)}


def short_form(flags: Any) -> str:
    """`FI`, `UH,URX`, ... for a ResponseFlags message; `-` when none is set."""
    present = flags.ListFields()  # only the fields that are set (true, or a message)
    if not present:
        return NO_FLAGS
    names = sorted((f.name for f, _ in present), key=_ORDER.__getitem__)
    return ",".join(_CODE[name] for name in names)
