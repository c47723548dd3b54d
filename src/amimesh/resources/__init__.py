"""Typed resources (Istio, Kubernetes, Knative Serving, Ami kinds), YAML loading and
validation. Pure.

result = load_path("shop/")            # or parse_documents(text, "shop/vs.yaml"), parse_bytes
for error in result.errors:
    print(error)  # shop/vs.yaml: document 2 (line 14): VirtualService/default/reviews: ...
snapshot = build_snapshot(result.resources)
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amimesh.resources.errors import ConfigError, Issue, ParseResult
    from amimesh.resources.files import load_path
    from amimesh.resources.istio_networking import (
        DestinationRule,
        ServiceEntry,
        VirtualService,
        WorkloadEntry,
    )
    from amimesh.resources.kube import Service
    from amimesh.resources.meta import ObjectMeta, Resource
    from amimesh.resources.parse import parse_bytes, parse_documents, parse_object
    from amimesh.resources.registry import KINDS, Kind, KindRegistry
    from amimesh.resources.workload import Workload

# Imported when first asked for: a process that needs one small module of this package
# (`iso8601`, `yaml_text`) does not pay for every resource model.
_FROM = {
    "ConfigError": "errors",
    "Issue": "errors",
    "ParseResult": "errors",
    "load_path": "files",
    "DestinationRule": "istio_networking",
    "ServiceEntry": "istio_networking",
    "VirtualService": "istio_networking",
    "WorkloadEntry": "istio_networking",
    "Service": "kube",
    "ObjectMeta": "meta",
    "Resource": "meta",
    "parse_bytes": "parse",
    "parse_documents": "parse",
    "parse_object": "parse",
    "KINDS": "registry",
    "Kind": "registry",
    "KindRegistry": "registry",
    "Workload": "workload",
}


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "KINDS",
    "ConfigError",
    "DestinationRule",
    "Issue",
    "Kind",
    "KindRegistry",
    "ObjectMeta",
    "ParseResult",
    "Resource",
    "Service",
    "ServiceEntry",
    "VirtualService",
    "Workload",
    "WorkloadEntry",
    "load_path",
    "parse_bytes",
    "parse_documents",
    "parse_object",
]
