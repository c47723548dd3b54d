"""Host names: short, `name.ns`, `name.ns.svc` and fully qualified forms."""

from __future__ import annotations

DEFAULT_DOMAIN = "cluster.local"


def fqdn(name: str, namespace: str, domain: str = DEFAULT_DOMAIN) -> str:
    """The fully qualified name of a Kubernetes-style service."""
    return f"{name}.{namespace}.svc.{domain}"


def expand(host: str, namespace: str, domain: str = DEFAULT_DOMAIN) -> str:
    """Expand a host as Istio reads it in a resource of `namespace`.

    `reviews` → `reviews.NS.svc.DOMAIN`; `reviews.ns` → `reviews.ns.svc.DOMAIN`;
    `reviews.ns.svc` → `reviews.ns.svc.DOMAIN`; anything else is taken as written.
    The caller prefers an exact match with a known host (e.g. a ServiceEntry for
    `httpbin.org`) before expanding; see `Snapshot.resolve`.
    """
    host = host.lower().rstrip(".")
    if host == "*" or host.startswith("*."):
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return fqdn(host, namespace, domain)
    if len(parts) == 2:
        return fqdn(parts[0], parts[1], domain)
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.{domain}"
    return host


def name_forms(
    name: str, namespace: str, proxy_namespace: str, domain: str = DEFAULT_DOMAIN
) -> list[str]:
    """Every name a client in `proxy_namespace` may use for a service (without port).

    The short name only resolves within the service's own namespace, as with
    Kubernetes DNS search paths.
    """
    forms = []
    if namespace == proxy_namespace:
        forms.append(name)
    forms += [f"{name}.{namespace}", f"{name}.{namespace}.svc", fqdn(name, namespace, domain)]
    return forms


def is_wildcard(host: str) -> bool:
    return host == "*" or host.startswith("*.")


def wildcard_matches(pattern: str, host: str) -> bool:
    """Whether `host` is covered by `pattern` (`*` or `*.suffix`)."""
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host
