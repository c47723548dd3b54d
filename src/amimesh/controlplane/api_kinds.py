"""Kind names as users type them: `VirtualService`, `virtualservices`, `vs`,
`virtualservice.networking.istio.io`; all case-insensitive, as kubectl reads them.

The API resolves them, so every client (the `ami` command, scripts) gets the same
names, and a kind added to the registry is reachable under its own name at once.
"""

from __future__ import annotations

from amimesh.resources import KINDS, KindRegistry

# Short names, as Istio, Kubernetes and Knative define them: (API group, kind).
SHORT_NAMES: dict[str, tuple[str, str]] = {
    "svc": ("", "Service"),
    "cm": ("", "ConfigMap"),
    "wl": ("ami.dev", "Workload"),
    "vs": ("networking.istio.io", "VirtualService"),
    "dr": ("networking.istio.io", "DestinationRule"),
    "se": ("networking.istio.io", "ServiceEntry"),
    "we": ("networking.istio.io", "WorkloadEntry"),
    "wg": ("networking.istio.io", "WorkloadGroup"),
    "gw": ("networking.istio.io", "Gateway"),
    "pa": ("security.istio.io", "PeerAuthentication"),
    "ra": ("security.istio.io", "RequestAuthentication"),
    "ap": ("security.istio.io", "AuthorizationPolicy"),
    "ksvc": ("serving.knative.dev", "Service"),
    "kservice": ("serving.knative.dev", "Service"),
    "config": ("serving.knative.dev", "Configuration"),
    "cfg": ("serving.knative.dev", "Configuration"),
    "rev": ("serving.knative.dev", "Revision"),
    "rt": ("serving.knative.dev", "Route"),
    "el": ("triggers.tekton.dev", "EventListener"),
    "tb": ("triggers.tekton.dev", "TriggerBinding"),
    "ctb": ("triggers.tekton.dev", "ClusterTriggerBinding"),
    "tt": ("triggers.tekton.dev", "TriggerTemplate"),
    "proxy": ("projectcontour.io", "HTTPProxy"),
    "proxies": ("projectcontour.io", "HTTPProxy"),
    "app": ("argoproj.io", "Application"),
    "gtw": ("gateway.networking.k8s.io", "Gateway"),
    "gc": ("gateway.networking.k8s.io", "GatewayClass"),
    "refgrant": ("gateway.networking.k8s.io", "ReferenceGrant"),
    "apps": ("argoproj.io", "Application"),
}


class UnknownKindName(LookupError):
    pass


def plural(kind: str) -> str:
    """`VirtualService` -> `virtualservices`, `WorkloadEntry` -> `workloadentries`."""
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    return lower + "s"


def aliases(kinds: KindRegistry = KINDS) -> dict[str, tuple[str, str]]:
    """Every accepted name (lowercase) -> (API group, kind)."""
    out: dict[str, tuple[str, str]] = {}
    # The core group first: a bare `service` means the Kubernetes one, as in kubectl.
    ordered = sorted(kinds, key=lambda key: key[0] != "")
    for group, kind in ordered:
        for name in (kind.lower(), plural(kind)):
            out.setdefault(name, (group, kind))
            if group:
                out.setdefault(f"{name}.{group}", (group, kind))
    for short, key in SHORT_NAMES.items():
        if key in kinds:
            out.setdefault(short, key)
    return out


def resolve(name: str, kinds: KindRegistry = KINDS) -> tuple[str, str]:
    """(API group, kind) for a name a user typed; `UnknownKindName` saying which exist."""
    found = aliases(kinds).get(name.strip().lower())
    if found is None:
        known = ", ".join(sorted({kind for _, kind in kinds}))
        raise UnknownKindName(f'unknown kind "{name}"; known kinds: {known}')
    return found


def key_kind(group_kind: tuple[str, str], kinds: KindRegistry = KINDS) -> str:
    """How store keys name a kind: `Service`, `Service.serving.knative.dev`."""
    return kinds[group_kind].model.qualified_kind()
