"""A gateway's TLS credentials (Gateway `credentialName`), served to its Envoy by SDS.

    creds = Credentials(config.credentials, sds_server, client, identity)
    loops = await creds.start(trust_bundle, timeout_s=30)   # before Envoy starts
    # each of `loops` renews one credential from the CA: run it as an owned task

Each credential NAME is the SDS secret `NAME` (chain and key) and, for MUTUAL servers,
`NAME-cacert` (the CAs client certificates must chain to), as Istio names them.

- From files (`credentials/NAME/tls.crt`, `tls.key`, optionally `ca.crt` in the mesh's
  config dir, as a Kubernetes TLS secret): read once, here; without `ca.crt` the client
  CAs are the mesh's trust bundle.
- Otherwise from the mesh CA: a key made here, a CSR for the gateway's own SPIFFE ID,
  and the server names of its Gateway hosts (`dns_names`, `ip_addresses`, granted to
  gateway tokens only), renewed at half life like the SVID.

Keys stay in memory: never written, never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from amimesh.agent import certs, sds
from amimesh.agent.config import CredentialSpec
from amimesh.identity.issued import Issued
from amimesh.identity.spiffe import SpiffeId

log = logging.getLogger(__name__)

CA_SECRET_SUFFIX = "-cacert"


class CredentialError(RuntimeError):
    """A credential's files cannot be read."""


def _validation_name(spec: CredentialSpec) -> str | None:
    return spec.name + CA_SECRET_SUFFIX if spec.ca_secret else None


def from_files(spec: CredentialSpec, trust_bundle: str) -> sds.Secrets:
    """The credential's chain, key and client CAs, read from its files."""
    try:
        chain = Path(spec.cert_file).read_text()
        key = Path(spec.key_file).read_text()
        bundle = Path(spec.ca_file).read_text() if spec.ca_file else trust_bundle
    except OSError as e:
        # The error names the file, never its content.
        raise CredentialError(f"credential {spec.name}: {e.strerror}: {e.filename}") from None
    return sds.Secrets(chain, key, bundle)


class Credentials:
    """Serves every credential of `specs` on `server`."""

    def __init__(
        self,
        specs: Sequence[CredentialSpec],
        server: sds.SdsServer,
        client: certs.CaClient,
        identity: SpiffeId,
    ) -> None:
        self.specs = tuple(specs)
        self._sds = server
        self._client = client
        self._identity = identity
        self.rotators: dict[str, certs.Rotator] = {}

    async def start(
        self, trust_bundle: str, *, timeout_s: float
    ) -> list[Coroutine[Any, Any, None]]:
        """Serve every credential once (raises CredentialError, certs.CaRefused or
        CaUnavailable); the renewal loops of those the CA issues, for the caller to own."""
        loops: list[Coroutine[Any, Any, None]] = []
        for spec in self.specs:
            if spec.cert_file or spec.key_file:
                secrets = from_files(spec, trust_bundle)
                self._sds.put(sds.secret_protos(secrets, spec.name, _validation_name(spec)))
                log.info("credential %s from %s", spec.name, spec.cert_file)
                continue
            rotator = certs.Rotator(self._identity, self._signer(spec), on_cert=self._on(spec))
            await certs.first_certificate(rotator, timeout_s=timeout_s)
            self.rotators[spec.name] = rotator
            loops.append(rotator.run())
        return loops

    def _signer(self, spec: CredentialSpec) -> certs.Sign:
        client = self._client

        async def sign(csr_pem: str) -> Issued:
            return await client.sign(
                csr_pem, dns_names=spec.dns_names, ip_addresses=spec.ip_addresses
            )

        return sign

    def _on(self, spec: CredentialSpec) -> certs.OnCert:
        def on_cert(secrets: sds.Secrets, issued: Issued) -> None:
            self._sds.put(sds.secret_protos(secrets, spec.name, _validation_name(spec)))
            names = ", ".join((*spec.dns_names, *spec.ip_addresses))
            log.info("credential %s for %s serial %s", spec.name, names, issued.serial)

        return on_cert
