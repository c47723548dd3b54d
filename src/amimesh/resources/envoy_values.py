"""Envoy messages written in Envoy's JSON/YAML form (an EnvoyFilter's `patch.value`).

`parse(kind, value)` turns a mapping into the Envoy message a patch's `applyTo`
names, or raises `ValueError` saying where it does not fit. Typed configs name their
type with `@type`; Istio's `udpa.type.v1.TypedStruct` (and `xds.type.v3.TypedStruct`)
wrappers, which carry a `type_url` and a struct `value`, are read as the message they
wrap, so what Envoy receives is checked here first. A type is looked up among the
Envoy API packages (`xds-protos`) by its package: an unknown one is an error.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message import Message

TYPE_PREFIX = "type.googleapis.com/"
TYPED_STRUCTS = frozenset({"udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"})
# The message each `applyTo` patches.
MESSAGES: Mapping[str, type[Message]] = {
    "LISTENER": listener_pb2.Listener,
    "FILTER_CHAIN": listener_components_pb2.FilterChain,
    "NETWORK_FILTER": listener_components_pb2.Filter,
    "HTTP_FILTER": hcm_pb2.HttpFilter,
    "ROUTE_CONFIGURATION": route_pb2.RouteConfiguration,
    "VIRTUAL_HOST": route_components_pb2.VirtualHost,
    "HTTP_ROUTE": route_components_pb2.Route,
    "CLUSTER": cluster_pb2.Cluster,
}
# Type packages outside `envoy.` that Envoy configs name.
_ROOTS = ("envoy.", "udpa.", "xds.", "google.protobuf.")
MAX_DEPTH = 64


def parse(apply_to: str, value: Mapping[str, Any]) -> Message:
    """The message of `apply_to` that `value` writes; ValueError if it does not fit."""
    out = MESSAGES[apply_to]()
    try:
        json_format.ParseDict(unwrap(value), out)
    except json_format.ParseError as e:
        raise ValueError(_clean(str(e))) from None
    return out


def unwrap(value: Any, depth: int = 0) -> Any:
    """`value` with every TypedStruct read as the message it wraps, and every `@type`
    it names made known to the protobuf runtime."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        return [unwrap(v, depth + 1) for v in value]
    if not isinstance(value, Mapping):
        return value
    kind = value.get("@type")
    if isinstance(kind, str) and kind.removeprefix(TYPE_PREFIX) in TYPED_STRUCTS:
        inner = value.get("type_url", value.get("typeUrl"))
        if not isinstance(inner, str) or not inner:
            raise ValueError(f"{kind} needs a type_url")
        body = value.get("value") or {}
        if not isinstance(body, Mapping):
            raise ValueError(f"{kind}: value must be a mapping")
        return unwrap({"@type": inner, **body}, depth + 1)
    if isinstance(kind, str):
        known(kind)
    return {k: unwrap(v, depth + 1) for k, v in value.items()}


def known(type_url: str) -> None:
    """Make the message of `type_url` known, importing its API package; ValueError if
    there is no such Envoy type."""
    name = type_url.rpartition("/")[2]
    pool = descriptor_pool.Default()
    try:
        pool.FindMessageTypeByName(name)
        return
    except KeyError:
        pass
    package = name.rpartition(".")[0]
    if not package.startswith(_ROOTS) or not all(p.isidentifier() for p in package.split(".")):
        raise ValueError(f'unknown type "{type_url}"')
    try:
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if info.name.endswith("_pb2"):
                importlib.import_module(f"{package}.{info.name}")
        pool.FindMessageTypeByName(name)
    except (ImportError, KeyError):
        raise ValueError(f'unknown type "{type_url}"') from None


def _clean(message: str) -> str:
    return " ".join(message.split())[:500]
