"""Which namespaced, label-selected policy applies to a workload, as Istio decides it.

PeerAuthentication and Telemetry (and AuthorizationPolicy for its scope) follow one
rule: a policy in the workload's namespace whose selector matches its labels, else one
in that namespace without selector, else one without selector in the root namespace
`istio-system` (mesh-wide). At one level the first by name wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

ROOT_NAMESPACE = "istio-system"


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether every label of `selector` has the same value in `labels`."""
    return all(labels.get(k) == v for k, v in selector.items())


class _Policy(Protocol):
    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> Any: ...


P = TypeVar("P", bound=_Policy)


def match_labels(policy: _Policy) -> Mapping[str, str]:
    """The policy's `selector.matchLabels`; empty when it selects the whole namespace."""
    selector = policy.spec.selector
    return selector.matchLabels if selector is not None else {}


def by_namespace(
    policies: Iterable[P], keep: Callable[[P], bool] = lambda _: True
) -> dict[str, tuple[P, ...]]:
    """The policies `keep` accepts, by namespace, each namespace's in name order."""
    out: dict[str, list[P]] = {}
    for p in sorted(policies, key=lambda p: (p.namespace, p.name)):
        if keep(p):
            out.setdefault(p.namespace, []).append(p)
    return {ns: tuple(ps) for ns, ps in out.items()}


@dataclass(frozen=True)
class Levels(Generic[P]):
    """The policies that decide for one workload, narrowest first."""

    workload: P | None = None
    namespace: P | None = None
    mesh: P | None = None

    def narrowest(self) -> P | None:
        return self.workload or self.namespace or self.mesh


def levels(
    index: Mapping[str, tuple[P, ...]], namespace: str, labels: Mapping[str, str]
) -> Levels[P]:
    """The workload-, namespace- and mesh-level policies for a workload."""
    own = index.get(namespace, ())
    root = index.get(ROOT_NAMESPACE, ())
    return Levels(
        workload=next(
            (p for p in own if match_labels(p) and selects(match_labels(p), labels)), None
        ),
        namespace=next((p for p in own if not match_labels(p)), None),
        mesh=next((p for p in root if not match_labels(p)), None),
    )
