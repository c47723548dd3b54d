"""Clusters that reach identity providers outside the mesh, for https:// `jwksUri`s.

A `jwksUri` naming a mesh service (a Service or a ServiceEntry) is fetched through that
service's outbound cluster (`authn_jwt`). An https:// one naming a host the mesh does
not know (`model.authz.ExternalJwks`) gets a cluster of its own in every proxy (sidecar
or gateway) whose RequestAuthentications use it, `jwks|HOST|PORT`:

- STRICT_DNS on the URI's host and port, resolved as other DNS clusters are
  (`cluster_external.set_dns`);
- TLS with SNI = the host (none for an IP address), the server's certificate verified
  against the system's trusted CAs (`SYSTEM_CA_BUNDLE`, Debian's and Ubuntu's bundle)
  and required to name the host (a DNS SAN, or an IP SAN for an IP address).

A DestinationRule for that host (its `host` read in the RequestAuthentication's
namespace) is honoured as for any destination: its `trafficPolicy` sets the
connection pool and outlier detection, and its `tls` in SIMPLE or MUTUAL mode replaces
the defaults above (`caCertificates` for a private CA, `subjectAltNames`, `sni`, a
client certificate). Other `tls` modes do not apply to an https:// URI and are
ignored: the cluster keeps the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

from envoy.config.cluster.v3 import cluster_pb2

from amimesh.model import authz
from amimesh.model.proxy import Proxy
from amimesh.model.snapshot import Endpoint, Snapshot
from amimesh.resources import istio_networking as net
from amimesh.resources import istio_security as sec
from amimesh.resources.fields import is_ip
from amimesh.translate import cluster_external, cluster_policy, endpoints, tls

Cluster: TypeAlias = cluster_pb2.Cluster

SYSTEM_CA_BUNDLE = tls.SYSTEM_CA_BUNDLE
# How the fetch speaks HTTP (Envoy's JWKS fetcher sends HTTP/1.1).
_PROTOCOL = "HTTP"


def cluster_name(host: str, port: int) -> str:
    """`jwks|idp.example.com|443`, in the style of `names.cluster_name`."""
    return f"jwks|{host}|{port}"


def targets(snap: Snapshot, proxy: Proxy) -> tuple[authz.ExternalJwks, ...]:
    """The external JWKS hosts `proxy`'s RequestAuthentications fetch from, sorted."""
    providers = authz.inbound_policies(snap, proxy).providers
    return tuple(sorted({p.jwks_external for p in providers if p.jwks_external is not None}))


def clusters(snap: Snapshot, proxy: Proxy) -> list[Cluster]:
    """One cluster per external JWKS (host, port) `proxy` fetches from."""
    return clusters_for((t, snap.destination_rules.get(t.rule_host)) for t in targets(snap, proxy))


def clusters_for(
    found: Iterable[tuple[authz.ExternalJwks, net.DestinationRule | None]],
) -> list[Cluster]:
    """One cluster per external JWKS (host, port) of `found` (sorted, each with its
    DestinationRule); names are unique (one host and port read from two namespaces
    takes the first's DestinationRule)."""
    out: dict[str, Cluster] = {}
    for target, rule in found:
        name = cluster_name(target.host, target.port)
        if name not in out:
            out[name] = cluster(target, rule)
    return list(out.values())


def cluster(target: authz.ExternalJwks, rule: net.DestinationRule | None) -> Cluster:
    """The cluster for one external JWKS host, with `rule` the DestinationRule for it."""
    name = cluster_name(target.host, target.port)
    policy = rule.spec.trafficPolicy if rule is not None else None
    policy = cluster_policy.for_port(policy, target.port)[0]
    c = Cluster(name=name)
    cluster_external.set_dns(c, "STRICT_DNS")
    host = Endpoint(address=target.host, port=target.port)
    c.load_assignment.CopyFrom(endpoints.load_assignment(name, [host]))
    cluster_policy.apply(c, policy, _PROTOCOL)
    settings = policy.tls if policy is not None else None
    if settings is not None and settings.mode in ("SIMPLE", "MUTUAL"):
        context = _from_rule(target.host, settings)
    else:
        context = system_tls(target.host)
    c.transport_socket.CopyFrom(tls.transport_socket(context))
    return c


def system_tls(host: str, ca_bundle: str = SYSTEM_CA_BUNDLE) -> tls.UpstreamTlsContext:
    """TLS to `host`, whose certificate must chain to `ca_bundle` and name `host`."""
    ctx = tls.UpstreamTlsContext()
    if not is_ip(host):
        ctx.sni = host
    validation = ctx.common_tls_context.validation_context
    validation.trusted_ca.filename = ca_bundle
    validation.match_typed_subject_alt_names.append(tls.san_matcher(host))
    return ctx


def _from_rule(host: str, settings: sec.ClientTLSSettings) -> tls.UpstreamTlsContext:
    ip = is_ip(host)
    ctx = tls.file_upstream(settings, None if ip else host, ())
    if ip and not settings.sni:
        # No SNI for an address; the certificate must name the address instead.
        ctx.auto_host_sni = False
        ctx.auto_sni_san_validation = False
        if not settings.insecureSkipVerify and not settings.subjectAltNames:
            validation = ctx.common_tls_context.validation_context
            validation.match_typed_subject_alt_names.append(tls.san_matcher(host))
    return ctx
