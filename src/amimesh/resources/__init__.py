"""Typed resources (Istio, Kubernetes, Knative Serving, Ami kinds), YAML loading and
validation. Pure.

result = load_path("shop/")            # or parse_documents(text, "shop/vs.yaml"), parse_bytes
for error in result.errors:
    print(error)  # shop/vs.yaml: document 2 (line 14): VirtualService/default/reviews: ...
snapshot = build_snapshot(result.resources)
"""

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
