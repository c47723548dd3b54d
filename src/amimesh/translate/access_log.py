"""Proxy × Telemetry → Envoy file access logs for its connection managers and TCP proxies.

A proxy with an `access_log` path writes one line per request (HTTP) or connection
(TCP) there, unless a Telemetry that selects it disables access logging
(`model.telemetry`). Lines use Istio's field names:

- `json` (default): one JSON object per line (`log_format.json_format`), the fields of
  Istio's default JSON format plus `direction` (`inbound` or `outbound`). A field with
  no value is `null`; numbers (`response_code`, `bytes_sent`, `duration`, ...) are
  numbers.
- `text`: Istio's default text line (`%START_TIME%` first, `%ROUTE_NAME%` last).

The Envoy operators are Istio's, so a user's Istio log parser reads Ami's lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import substitution_format_string_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from google.protobuf import any_pb2, struct_pb2

from amimesh.model.proxy import AccessLogFormat, Proxy
from amimesh.model.snapshot import Snapshot
from amimesh.model.telemetry import AccessLogPolicy

AccessLog: TypeAlias = accesslog_pb2.AccessLog

FILE_ACCESS_LOG = "envoy.access_loggers.file"
INBOUND = "inbound"
OUTBOUND = "outbound"

# Istio's default JSON access log (field name -> Envoy command operator), in its order.
JSON_FIELDS: dict[str, str] = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "route_name": "%ROUTE_NAME%",
}

# Istio's default text access log line.
TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)


@dataclass(frozen=True)
class AccessLogConfig:
    """Where and how a proxy writes its access log."""

    path: str
    format: AccessLogFormat = "json"

    def logs(self, direction: str) -> list[AccessLog]:
        """The access logs of one connection manager or TCP proxy of `direction`."""
        return [file_access_log(self.path, self.format, direction)]


def config(snap: Snapshot, proxy: Proxy) -> AccessLogConfig | None:
    """How `proxy` writes its access log; None when it writes none (no path, or a
    Telemetry disables it)."""
    return config_for(proxy, snap.access_log_policy(proxy.namespace, proxy.labels))


def config_for(proxy: Proxy, policy: AccessLogPolicy) -> AccessLogConfig | None:
    """`config` under the Telemetry `policy` that applies to `proxy`."""
    if not proxy.access_log or not policy.enabled:
        return None
    return AccessLogConfig(proxy.access_log, proxy.access_log_format)


def logs(cfg: AccessLogConfig | None, direction: str) -> list[AccessLog]:
    """The access logs for `direction` under `cfg`; none when `cfg` is None."""
    return [] if cfg is None else cfg.logs(direction)


def file_access_log(path: str, fmt: AccessLogFormat, direction: str) -> AccessLog:
    """Envoy's file access log to `path`, in Istio's `fmt` (JSON or text)."""
    if fmt == "text":
        log_format = substitution_format_string_pb2.SubstitutionFormatString(
            text_format_source={"inline_string": TEXT_FORMAT}
        )
    else:
        fields = struct_pb2.Struct()
        fields.update({**JSON_FIELDS, "direction": direction})
        log_format = substitution_format_string_pb2.SubstitutionFormatString(json_format=fields)
    typed = any_pb2.Any()
    typed.Pack(file_pb2.FileAccessLog(path=path, log_format=log_format))
    return AccessLog(name=FILE_ACCESS_LOG, typed_config=typed)
