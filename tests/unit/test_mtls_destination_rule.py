"""A DestinationRule's `tls` (ClientTLSSettings): which fields go with which mode."""

from __future__ import annotations

import pytest

from amimesh.resources import parse_documents


def dr(tls: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
        f"spec:\n  host: r\n  trafficPolicy:\n    tls: {tls}\n"
    )


T = "spec.trafficPolicy.tls"

CASES: list[tuple[str, str, list[str]]] = [
    ("mode is required", "{sni: a}", [f"{T}.mode: is required"]),
    (
        "unknown mode",
        "{mode: TLS}",
        [f'{T}.mode: must be one of "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL", got "TLS"'],
    ),
    (
        "MUTUAL needs a certificate and a key (no CA: the system's, as in Istio)",
        "{mode: MUTUAL}",
        [
            f"{T}.clientCertificate: is required with mode MUTUAL",
            f"{T}.privateKey: is required with mode MUTUAL",
        ],
    ),
    (
        "SIMPLE takes no client certificate (no CA: the system's, as in Istio)",
        "{mode: SIMPLE, clientCertificate: /c.pem}",
        [f"{T}.clientCertificate: is not used with mode SIMPLE"],
    ),
    (
        "paths are paths (relative ones are the proxy's working directory's)",
        "{mode: MUTUAL, clientCertificate: c.pem, privateKey: ./k.pem, caCertificates: ' '}",
        [f'{T}.caCertificates: must be a file path, got " "'],
    ),
    (
        "insecureSkipVerify verifies nothing",
        "{mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}",
        [f"{T}.caCertificates: is not used with insecureSkipVerify: no certificate is verified"],
    ),
    (
        "ISTIO_MUTUAL uses the mesh's certificates",
        "{mode: ISTIO_MUTUAL, privateKey: /k.pem, caCertificates: /ca.pem, sni: x}",
        [
            f"{T}.privateKey: is not used with mode ISTIO_MUTUAL: the mesh's own certificates "
            "are used",
            f"{T}.caCertificates: is not used with mode ISTIO_MUTUAL: the mesh's own "
            "certificates are used",
        ],
    ),
    (
        "DISABLE takes nothing else",
        "{mode: DISABLE, sni: x, subjectAltNames: [y]}",
        [
            f"{T}.subjectAltNames: is not used with mode DISABLE",
            f"{T}.sni: is not used with mode DISABLE",
        ],
    ),
    (
        "credentialName and caCrl not yet",
        "{mode: SIMPLE, credentialName: c, caCrl: /crl.pem, insecureSkipVerify: true}",
        [
            f"{T}.credentialName: is not supported by Ami yet",
            f"{T}.caCrl: is not supported by Ami yet",
        ],
    ),
]


@pytest.mark.parametrize(("tls", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_client_tls_settings(tls: str, expected: list[str]) -> None:
    result = parse_documents(dr(tls), "dr.yaml")
    assert [f"{e.field}: {e.message}" for e in result.errors] == expected


@pytest.mark.parametrize(
    "tls",
    [
        "{mode: DISABLE}",
        "{mode: ISTIO_MUTUAL}",
        "{mode: ISTIO_MUTUAL, sni: a.b, subjectAltNames: [spiffe://cluster.local/ns/a/sa/b]}",
        "{mode: SIMPLE, caCertificates: /ca.pem, sni: a.b}",
        "{mode: SIMPLE, insecureSkipVerify: true}",
        "{mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}",
    ],
)
def test_valid_client_tls_settings(tls: str) -> None:
    result = parse_documents(dr(tls), "dr.yaml")
    assert result.ok, [str(e) for e in result.errors]
