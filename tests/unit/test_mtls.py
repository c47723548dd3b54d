"""PeerAuthentication: validation (golden errors), which mode applies where, endpoints' tlsMode."""

from __future__ import annotations

import textwrap

import pytest

from amimesh.model import mtls
from amimesh.model.snapshot import Instance, Snapshot, build_snapshot
from amimesh.resources import parse_documents
from amimesh.resources.istio_security import PeerAuthentication


def pa(name: str, namespace: str, spec: str) -> str:
    head = (
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
    )
    return head + textwrap.indent(textwrap.dedent(spec), "  ")


def load(*texts: str) -> list[PeerAuthentication]:
    result = parse_documents("\n---\n".join(texts), "pa.yaml")
    assert result.ok, [str(e) for e in result.errors]
    out = [r for r in result.resources if isinstance(r, PeerAuthentication)]
    assert len(out) == len(result.resources)
    return out


# --- validation ------------------------------------------------------------------------

BAD: list[tuple[str, str, list[str]]] = [
    (
        "unknown mode",
        pa("a", "shop", "mtls: {mode: STRICTER}\n"),
        [
            'spec.mtls.mode: must be one of "UNSET", "DISABLE", "PERMISSIVE", "STRICT", '
            'got "STRICTER"'
        ],
    ),
    (
        "unknown field, with a suggestion",
        pa("a", "shop", "mtlss: {mode: STRICT}\n"),
        [
            'spec.mtlss: unknown field (Ami does not know "mtlss" on PeerAuthentication spec; '
            'did you mean "mtls"?)'
        ],
    ),
    (
        "port level without a selector",
        pa("a", "shop", "portLevelMtls: {8080: {mode: DISABLE}}\n"),
        [
            "spec.portLevelMtls: needs a selector with matchLabels: a namespace-wide or "
            "mesh-wide PeerAuthentication cannot set modes per port"
        ],
    ),
    (
        "port level with an empty selector",
        pa("a", "shop", "selector: {matchLabels: {}}\nportLevelMtls: {8080: {mode: DISABLE}}\n"),
        [
            "spec.portLevelMtls: needs a selector with matchLabels: a namespace-wide or "
            "mesh-wide PeerAuthentication cannot set modes per port"
        ],
    ),
    (
        "port level set but empty",
        pa("a", "shop", "selector: {matchLabels: {app: a}}\nportLevelMtls: {}\n"),
        ["spec.portLevelMtls: must name at least one port when it is set"],
    ),
    (
        "port numbers",
        pa(
            "a",
            "shop",
            "selector: {matchLabels: {app: a}}\n"
            "portLevelMtls: {0: {mode: DISABLE}, 70000: {mode: STRICT}, 8080: {}}\n",
        ),
        [
            "spec.portLevelMtls.0: must be a port number from 1 to 65535, got 0",
            "spec.portLevelMtls.70000: must be a port number from 1 to 65535, got 70000",
        ],
    ),
    (
        "a port that is not a number",
        pa("a", "shop", "selector: {matchLabels: {app: a}}\nportLevelMtls: {http: {}}\n"),
        ['spec.portLevelMtls.http: must be a whole number, got "http"'],
    ),
    (
        "selector labels",
        pa("a", "shop", 'selector: {matchLabels: {"app*": a, "a/b/c": b, ok: "no way"}}\n'),
        [
            'spec.selector.matchLabels["app*"]: wildcards are not allowed in a selector, '
            'got "app*": "a"',
            'spec.selector.matchLabels["a/b/c"]: a label key is a name of at most 63 letters, '
            "digits, '-', '_' and '.', optionally after a DNS prefix and '/', got \"a/b/c\"",
            "spec.selector.matchLabels.ok: a label value is at most 63 letters, digits, '-', "
            "'_' and '.', starting and ending with a letter or digit, got \"no way\"",
        ],
    ),
    (
        "mode has a type",
        pa("a", "shop", "mtls: STRICT\n"),
        ['spec.mtls: must be a mapping of fields, got "STRICT"'],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_malformed_peer_authentication(text: str, expected: list[str]) -> None:
    result = parse_documents(text, "pa.yaml")
    assert [f"{e.field}: {e.message}" for e in result.errors] == expected
    assert not result.resources


def test_a_full_error_line_names_file_document_and_resource() -> None:
    result = parse_documents(pa("strict", "shop", "mtls: {mode: strict}\n"), "sec/pa.yaml")
    assert [str(e) for e in result.errors] == [
        "sec/pa.yaml: document 0 (line 1): PeerAuthentication/shop/strict: spec.mtls.mode: "
        'must be one of "UNSET", "DISABLE", "PERMISSIVE", "STRICT", got "strict"'
    ]


def test_valid_forms_load() -> None:
    (empty,) = load(
        "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: {name: e}\n"
    )
    assert empty.spec.mtls is None and empty.spec.selector is None
    (full,) = load(
        pa(
            "w",
            "shop",
            "selector: {matchLabels: {app: reviews, security.istio.io/tlsMode: istio}}\n"
            "mtls: {mode: STRICT}\nportLevelMtls: {'8080': {mode: DISABLE}, 9090: {}}\n",
        )
    )
    assert full.spec.portLevelMtls is not None
    assert {p: m.mode for p, m in full.spec.portLevelMtls.items()} == {
        8080: "DISABLE",
        9090: "UNSET",
    }


# --- which mode applies ----------------------------------------------------------------


def index(*texts: str) -> mtls.PeerAuthIndex:
    return mtls.index(load(*texts))


def test_default_is_permissive() -> None:
    assert mtls.inbound_mode({}, "shop", {"app": "a"}, 8080) == "PERMISSIVE"


def test_narrowest_level_wins_and_unset_inherits() -> None:
    mesh = pa("default", "istio-system", "mtls: {mode: STRICT}\n")
    ns = pa("default", "shop", "mtls: {mode: DISABLE}\n")
    workload = pa(
        "reviews",
        "shop",
        "selector: {matchLabels: {app: reviews}}\nmtls: {mode: UNSET}\n"
        "portLevelMtls: {9000: {mode: PERMISSIVE}, 9001: {mode: UNSET}}\n",
    )
    idx = index(mesh)
    assert mtls.inbound_mode(idx, "shop", {}, 80) == "STRICT"
    assert mtls.inbound_mode(idx, "istio-system", {}, 80) == "STRICT"
    idx = index(mesh, ns)
    assert mtls.inbound_mode(idx, "shop", {}, 80) == "DISABLE"
    assert mtls.inbound_mode(idx, "other", {}, 80) == "STRICT"
    idx = index(mesh, ns, workload)
    reviews = {"app": "reviews", "version": "v1"}
    assert mtls.inbound_mode(idx, "shop", reviews, 9000) == "PERMISSIVE"
    # UNSET at the port and at the workload: the namespace decides.
    assert mtls.inbound_mode(idx, "shop", reviews, 9001) == "DISABLE"
    assert mtls.inbound_mode(idx, "shop", reviews, 80) == "DISABLE"
    assert mtls.inbound_mode(idx, "shop", {"app": "ratings"}, 9000) == "DISABLE"


def test_policies_apply_only_in_their_namespace_or_from_the_root() -> None:
    idx = index(
        pa("w", "shop", "selector: {matchLabels: {app: a}}\nmtls: {mode: STRICT}\n"),
        # A selector in the root namespace picks workloads of the root namespace only.
        pa("w", "istio-system", "selector: {matchLabels: {app: a}}\nmtls: {mode: DISABLE}\n"),
    )
    assert mtls.inbound_mode(idx, "shop", {"app": "a"}, 80) == "STRICT"
    assert mtls.inbound_mode(idx, "web", {"app": "a"}, 80) == "PERMISSIVE"
    assert mtls.inbound_mode(idx, "istio-system", {"app": "a"}, 80) == "DISABLE"


def test_several_policies_at_one_level_first_by_name_wins() -> None:
    idx = index(
        pa("b", "shop", "mtls: {mode: DISABLE}\n"),
        pa("a", "shop", "mtls: {mode: STRICT}\n"),
        pa("wb", "shop", "selector: {matchLabels: {app: x}}\nmtls: {mode: DISABLE}\n"),
        pa("wa", "shop", "selector: {matchLabels: {tier: y}}\nmtls: {mode: PERMISSIVE}\n"),
    )
    assert mtls.inbound_mode(idx, "shop", {}, 80) == "STRICT"
    assert mtls.inbound_mode(idx, "shop", {"app": "x", "tier": "y"}, 80) == "PERMISSIVE"
    policies = mtls.policies(idx, "shop", {"app": "x"})
    assert policies.workload is not None and policies.workload.name == "wb"
    assert policies.namespace is not None and policies.namespace.name == "a"


def test_spiffe_id() -> None:
    assert mtls.spiffe_id("cluster.local", "shop", "reviews") == (
        "spiffe://cluster.local/ns/shop/sa/reviews"
    )


# --- endpoints' tlsMode in the snapshot --------------------------------------------------

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-meshed, namespace: shop}
spec:
  address: 10.0.0.1
  ports: {http: 8080}
  labels: {app: reviews, security.istio.io/tlsMode: istio}
  serviceAccount: vm
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-plain, namespace: shop}
spec: {address: 10.0.0.2, ports: {http: 8080}, labels: {app: reviews}}
"""


def snapshot(*extra: str, version: int = 1, previous: Snapshot | None = None) -> Snapshot:
    result = parse_documents("\n---\n".join([SERVICES, *extra]), "shop.yaml")
    assert result.ok, [str(e) for e in result.errors]
    instance = Instance(
        id="reviews-0.shop",
        workload="reviews",
        namespace="shop",
        labels={"app": "reviews"},
        service_account="reviews",
        ports={8080: 31000},
    )
    return build_snapshot(result.resources, [instance], version=version, previous=previous)


def modes(snap: Snapshot) -> dict[str, str]:
    eps = snap.endpoints[("reviews.shop.svc.cluster.local", 9080)]
    return {e.address + ":" + str(e.port): e.tls_mode for e in eps}


def test_endpoints_with_sidecars_take_mutual_tls() -> None:
    assert modes(snapshot()) == {
        "127.0.0.1:31000": "istio",
        "10.0.0.1:8080": "istio",
        "10.0.0.2:8080": "disabled",
    }


def test_an_endpoint_whose_port_disables_mtls_is_reached_in_plain_text() -> None:
    # The workload port (8080) decides, not the sidecar's host port (31000).
    port_level = pa(
        "reviews",
        "shop",
        "selector: {matchLabels: {app: reviews}}\nportLevelMtls: {8080: {mode: DISABLE}}\n",
    )
    one = snapshot()
    two = snapshot(port_level, version=2, previous=one)
    assert modes(two) == {
        "127.0.0.1:31000": "disabled",
        "10.0.0.1:8080": "disabled",
        "10.0.0.2:8080": "disabled",
    }
    assert two.peer_authentications["shop"][0].name == "reviews"
    # An unrelated change keeps the endpoints and the policies (same objects).
    three = snapshot(
        port_level,
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80}]}\n",
        version=3,
        previous=two,
    )
    key = ("reviews.shop.svc.cluster.local", 9080)
    assert three.endpoints[key] is two.endpoints[key]
    assert three.peer_authentications["shop"] is two.peer_authentications["shop"]
