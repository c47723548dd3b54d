"""RequestAuthentication `jwtRules` → Envoy's `envoy.filters.http.jwt_authn` filter.

Each rule is a provider. One requirement covers every path: any provider's valid
token, or no token at all (`requires_any` of the providers and `allow_missing`), so an
invalid token gets 401 while a request without one goes on to authorization, as in
Istio. Every provider writes the verified payload to the filter's dynamic metadata
under `payload`, where the RBAC filters read `iss`, `sub` and other claims.

Keys come inline (`jwks` → `local_jwks`) or from `jwksUri`, fetched by Envoy
(`remote_jwks`): through the mesh's outbound cluster of the service the URI names
(http:// or https://; TLS then comes from the mesh's rules for that destination), or,
for an https:// URI naming a host the mesh does not know, through that host's own
cluster (`jwks_clusters`). A `jwksUri` the sidecar cannot fetch (`model.authz`:
http:// naming no service port of the mesh, or a mesh name that names none) gets a key
set that verifies nothing: tokens of that issuer are refused (401), as Istio does when
it cannot fetch the keys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from envoy.config.core.v3 import base_pb2, http_uri_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import duration_pb2, empty_pb2

from amimesh.model.authz import JwtProvider
from amimesh.translate import jwks_clusters, names
from amimesh.translate.authz_match import JWT_FILTER, PAYLOAD_KEY
from amimesh.translate.listener_hcm import http_filter

# Istio's default timeout for fetching a JWKS.
DEFAULT_FETCH_TIMEOUT_S = 5.0
# For a jwksUri Ami cannot reach: a public key whose private half was thrown away when
# it was made, so it verifies no token (Envoy refuses a key set with no key).
UNREACHABLE_JWKS = json.dumps(
    {
        "keys": [
            {
                "kty": "EC",
                "crv": "P-256",
                "x": "y0xqxxMEN0gIFDBMb0Hq6ZkYgsSDf3Y1EWDOWn2MuGA",
                "y": "exsPRVTqZsiEheyUP95g1IbS_iiCx-noFW_hviuSTuk",
                "alg": "ES256",
                "kid": "ami-unreachable-jwks",
            }
        ]
    }
)


def jwt_filter(providers: Sequence[JwtProvider]) -> hcm_pb2.HttpFilter:
    config = jwt_pb2.JwtAuthentication(bypass_cors_preflight=True)
    for p in providers:
        config.providers[p.name].CopyFrom(provider(p))
    requirement = jwt_pb2.JwtRequirement()
    any_of = requirement.requires_any.requirements
    for p in providers:
        any_of.add(provider_name=p.name)
    any_of.add(allow_missing=empty_pb2.Empty())
    rule = config.rules.add(requires=requirement)
    rule.match.prefix = "/"
    return http_filter(JWT_FILTER, config)


def provider(p: JwtProvider) -> jwt_pb2.JwtProvider:
    rule = p.rule
    out = jwt_pb2.JwtProvider(
        issuer=rule.issuer,
        audiences=rule.audiences,
        forward=rule.forwardOriginalToken,
        from_headers=[
            jwt_pb2.JwtHeader(name=h.name, value_prefix=h.prefix) for h in rule.fromHeaders
        ],
        from_params=rule.fromParams,
        from_cookies=rule.fromCookies,
        forward_payload_header=rule.outputPayloadToHeader or "",
        claim_to_headers=[
            jwt_pb2.JwtClaimToHeader(header_name=c.header, claim_name=c.claim)
            for c in rule.outputClaimToHeaders
        ],
        payload_in_metadata=PAYLOAD_KEY,
    )
    if rule.jwks is not None:
        out.local_jwks.CopyFrom(base_pb2.DataSource(inline_string=rule.jwks))
    elif rule.jwksUri is not None and (cluster := jwks_cluster(p)) is not None:
        timeout = rule.timeout if rule.timeout is not None else DEFAULT_FETCH_TIMEOUT_S
        out.remote_jwks.http_uri.CopyFrom(
            http_uri_pb2.HttpUri(uri=rule.jwksUri, cluster=cluster, timeout=_duration(timeout))
        )
    else:
        out.local_jwks.CopyFrom(base_pb2.DataSource(inline_string=UNREACHABLE_JWKS))
    return out


def jwks_cluster(p: JwtProvider) -> str | None:
    """The cluster through which `p`'s `jwksUri` is fetched; None if there is none."""
    if p.jwks_service is not None:
        host, port = p.jwks_service
        return names.outbound_cluster(port, host)
    if p.jwks_external is not None:
        return jwks_clusters.cluster_name(p.jwks_external.host, p.jwks_external.port)
    return None


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d
