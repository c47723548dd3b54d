"""Gateway documents that Ami rejects, each with the exact errors a user reads."""

from __future__ import annotations

import pytest

from amimesh.resources import parse_documents
from amimesh.resources.istio_gateway import Gateway

SOURCE = "edge/gw.yaml"
GW = f"{SOURCE}: document 0 (line 1): Gateway/default/edge"
HEAD = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
"""
CERTS = "serverCertificate: /etc/certs/a.pem, privateKey: /etc/certs/a.key"

CASES: list[tuple[str, str, list[str]]] = [
    ("no server", HEAD + "  servers: []\n", [f"{GW}: spec.servers: must have at least one server"]),
    (
        "ports and names reused",
        HEAD
        + f"""\
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*"]
  - port: {{number: 80, name: http-b, protocol: HTTP}}
    hosts: [b.example.com]
  - port: {{number: 80, name: http, protocol: HTTPS}}
    hosts: [c.example.com]
    tls: {{mode: SIMPLE, {CERTS}}}
""",
        [
            f"{GW}: spec.servers[1].port.number: port 80 is already used by servers[0]: "
            "list all its hosts in one server (only HTTPS and TLS servers may share a port)",
            f"{GW}: spec.servers[2].port.number: port 80 is already used by servers[0] "
            "with protocol HTTP",
            f'{GW}: spec.servers[2].port.name: port name "http" is already used by servers[0]',
        ],
    ),
    (
        "hosts",
        HEAD
        + """\
  servers:
  - port: {number: 80, name: http, protocol: http}
    hosts: []
  - port: {number: 81, name: b, protocol: HTTP}
    hosts: [shop/x.example.com, ./y, "*/z", Bad_NS/z, a/b/c, "http://q.example.com", ns/]
""",
        [
            f"{GW}: spec.servers[0].hosts: must have at least one host",
            f'{GW}: spec.servers[1].hosts[3]: the namespace before "/" must be ".", "*" or a '
            'namespace name, got "Bad_NS/z"',
            f'{GW}: spec.servers[1].hosts[4]: must be "host" or "namespace/host", got "a/b/c"',
            f"{GW}: spec.servers[1].hosts[5]: must be a host name, not a URL: "
            'write "q.example.com"',
            f'{GW}: spec.servers[1].hosts[6]: must name a host after the namespace, got "ns/"',
        ],
    ),
    (
        "tls",
        HEAD
        + f"""\
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {{mode: SIMPLE, serverCertificate: certs/a.pem}}  # relative: accepted
  - port: {{number: 443, name: https-b, protocol: HTTPS}}
    hosts: [a.example.com, b.example.com]
    tls: {{{CERTS}}}
  - port: {{number: 8443, name: https-c, protocol: HTTPS}}
    hosts: [c.example.com]
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*"]
    tls: {{httpsRedirect: true, mode: SIMPLE}}
  - port: {{number: 9443, name: https-d, protocol: HTTPS}}
    hosts: [d.example.com]
    tls: {{mode: SIMPLE, {CERTS}, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2}}
""",
        [
            f"{GW}: spec.servers[0].tls.privateKey: is required with mode SIMPLE (or set "
            "credentialName)",
            f"{GW}: spec.servers[1].tls.mode: is required on an HTTPS server: SIMPLE, MUTUAL "
            "or PASSTHROUGH",
            f"{GW}: spec.servers[2].tls: is required on an HTTPS server: set mode SIMPLE and the "
            "certificate",
            f"{GW}: spec.servers[3].tls.mode: is only for HTTPS servers (this one is HTTP); a "
            "plain-text server takes only httpsRedirect",
            f"{GW}: spec.servers[4].tls.minProtocolVersion: must not be above "
            "maxProtocolVersion (TLSV1_2)",
            f'{GW}: spec.servers[1].hosts[0]: host "a.example.com" on port 443 is already served '
            "by servers[0]",
        ],
    ),
    (
        "tcp and tls servers",
        HEAD
        + """\
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [a.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 443, name: tls-b, protocol: TLS}
    hosts: [b.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 8443, name: tls-c, protocol: TLS}
    hosts: [c.example.com]
    tls: {mode: SIMPLE, credentialName: c}
  - port: {number: 9443, name: https-pass, protocol: HTTPS}
    hosts: [d.example.com]
    tls: {mode: PASSTHROUGH}
""",
        [
            f"{GW}: spec.servers[3].tls.mode: a TLS server takes mode PASSTHROUGH (routed by "
            "SNI by tls routes); terminating TLS in front of TCP is not supported by Ami yet",
        ],
    ),
    (
        "not yet",
        HEAD
        + """\
  servers:
  - port: {number: 443, name: tls, protocol: MONGO}
    hosts: [a.example.com]
    tls: {mode: ISTIO_MUTUAL, caCrl: /crl.pem}
    defaultEndpoint: 127.0.0.1:8080  # accepted (ignored, as by Istio)
""",
        [
            f'{GW}: spec.servers[0].port.protocol: "MONGO" is not supported by Ami yet',
            f'{GW}: spec.servers[0].tls.mode: "ISTIO_MUTUAL" is not supported by Ami yet',
            f"{GW}: spec.servers[0].tls.caCrl: is not supported by Ami yet",
        ],
    ),
    (
        "mutual and credentials",
        HEAD
        + f"""\
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {{mode: MUTUAL, {CERTS}}}
  - port: {{number: 444, name: https-b, protocol: HTTPS}}
    hosts: [b.example.com]
    tls: {{mode: MUTUAL, {CERTS}, caCertificates: ca.pem}}
  - port: {{number: 445, name: https-c, protocol: HTTPS}}
    hosts: [c.example.com]
    tls: {{mode: SIMPLE, {CERTS}, caCertificates: /ca.pem, subjectAltNames: [x]}}
  - port: {{number: 446, name: https-d, protocol: HTTPS}}
    hosts: [d.example.com]
    tls: {{mode: SIMPLE, credentialName: Bad_Name}}
  - port: {{number: 447, name: https-e, protocol: HTTPS}}
    hosts: [e.example.com]
    tls: {{mode: MUTUAL, credentialName: "kubernetes://e-cert", caCertificates: /ca.pem}}
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*"]
    tls: {{credentialName: a-cert}}
""",
        [
            f"{GW}: spec.servers[0].tls.caCertificates: is required with mode MUTUAL (or set "
            "credentialName)",
            f"{GW}: spec.servers[2].tls.subjectAltNames: is only for mode MUTUAL (it matches the "
            "client's certificate)",
            f"{GW}: spec.servers[3].tls.credentialName: must be a secret name (lowercase "
            "letters, digits, '-' and '.'), optionally after kubernetes://, got \"Bad_Name\"",
            f"{GW}: spec.servers[4].tls.caCertificates: must not be set with credentialName "
            "(the credential holds the certificate, its key and, for MUTUAL, the CA)",
            f"{GW}: spec.servers[5].tls.credentialName: is only for HTTPS servers (this one is "
            "HTTP); a plain-text server takes only httpsRedirect",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_gateway(text: str, expected: list[str]) -> None:
    result = parse_documents(text, SOURCE)
    assert [str(e) for e in result.errors] == expected
    assert result.resources == []


def test_a_good_gateway_reads_istio_yaml() -> None:
    text = HEAD.replace("networking.istio.io/v1", "networking.istio.io/v1beta1") + (
        f"""\
  servers:
  - port: {{number: 80, name: http, protocol: http}}
    hosts: ["*"]
    tls: {{httpsRedirect: true}}
  - port: {{number: 443, name: https-a, protocol: HTTPS}}
    hosts: [shop/a.example.com]
    tls: {{mode: SIMPLE, {CERTS}, minProtocolVersion: TLSV1_2}}
  - port: {{number: 443, name: https-b, protocol: HTTPS}}
    hosts: [b.example.com]
    tls: {{mode: SIMPLE, {CERTS}}}
"""
    )
    result = parse_documents(text, SOURCE)
    assert result.ok, [str(e) for e in result.errors]
    (gw,) = result.resources
    assert isinstance(gw, Gateway)
    assert [s.port.protocol for s in gw.spec.servers] == ["HTTP", "HTTPS", "HTTPS"]
    assert gw.spec.servers[1].tls is not None
    assert gw.spec.servers[1].tls.privateKey == "/etc/certs/a.key"
