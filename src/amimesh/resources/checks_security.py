"""PeerAuthentication checks beyond the schema, after Istio's validation rules.

- `portLevelMtls` needs a selector with labels: a namespace or mesh policy has no
  workload whose ports it could name. When present, it has at least one port.
- Selector labels are Kubernetes label keys and values, without wildcards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from amimesh.resources import istio_security as sec
from amimesh.resources.errors import Issue, Loc
from amimesh.resources.fields import show

# A label key is an optional DNS-subdomain prefix and "/", then a name; values are names.
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_peer_authentication(pa: sec.PeerAuthentication) -> Iterator[Issue]:
    spec = pa.spec
    selector = spec.selector
    if selector is not None:
        yield from selector_issues(selector, ("spec", "selector", "matchLabels"))
    if spec.portLevelMtls is None:
        return
    if selector is None or not selector.matchLabels:
        yield Issue(
            ("spec", "portLevelMtls"),
            "needs a selector with matchLabels: a namespace-wide or mesh-wide "
            "PeerAuthentication cannot set modes per port",
        )
    elif not spec.portLevelMtls:
        yield Issue(("spec", "portLevelMtls"), "must name at least one port when it is set")
    for port in spec.portLevelMtls:
        if not 1 <= port <= 65535:
            yield Issue(
                ("spec", "portLevelMtls", str(port)),
                f"must be a port number from 1 to 65535, got {port}",
            )


def selector_issues(selector: sec.WorkloadSelector, loc: Loc) -> Iterator[Issue]:
    """Why the labels of a workload selector at `loc` are not Kubernetes labels."""
    for key, value in selector.matchLabels.items():
        where = (*loc, key)
        if "*" in key or "*" in value:
            yield Issue(
                where, f"wildcards are not allowed in a selector, got {show(key)}: {show(value)}"
            )
            continue
        problem = label_key_problem(key)
        if problem is not None:
            yield Issue(where, problem)
        elif not _LABEL_NAME.match(value):
            yield Issue(
                where,
                "a label value is at most 63 letters, digits, '-', '_' and '.', starting and "
                f"ending with a letter or digit, got {show(value)}",
            )


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a Kubernetes label key (`app`, `security.istio.io/tlsMode`)."""
    prefix, slash, name = key.rpartition("/")
    bad_prefix = slash and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix))
    if not name or bad_prefix or not _LABEL_NAME.match(name):
        return (
            "a label key is a name of at most 63 letters, digits, '-', '_' and '.', "
            f"optionally after a DNS prefix and '/', got {show(key)}"
        )
    return None
