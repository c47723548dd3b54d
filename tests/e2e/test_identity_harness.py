"""The harness's identities: every Envoy it starts has a certificate from `mesh.ca` by
SDS, and `sidecar.rotate()` replaces it under traffic between sidecars."""

from __future__ import annotations

import datetime
import threading
import time

import pytest

from amimesh.identity import pem
from tests.e2e.harness import GATEWAY_SERVICE_ACCOUNT, Mesh

pytestmark = [pytest.mark.envoy]

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
"""


def test_sidecars_get_identities_and_rotate_under_traffic(mesh: Mesh) -> None:
    mesh.apply(SERVICE)
    reviews = mesh.workload("reviews", {"app": "reviews"}, port=9080, service_account="reviews")
    client = mesh.client()
    gateway = mesh.gateway()
    mesh.wait_synced()
    assert reviews.identity is not None and client.identity is not None
    assert reviews.identity.uri == "spiffe://cluster.local/ns/default/sa/reviews"
    assert client.identity.uri == "spiffe://cluster.local/ns/default/sa/default"
    assert gateway.identity is not None
    assert gateway.identity.service_account == GATEWAY_SERVICE_ACCOUNT
    assert reviews.issued is not None
    leaf = pem.load_certificates(reviews.issued.certificate_chain)[0]
    leaf.verify_directly_issued_by(mesh.ca.cert)
    assert pem.load_certificates(mesh.trust_bundle) == [mesh.ca.cert]

    stop = threading.Event()
    results: list[int | str] = []

    def traffic() -> None:
        with client.http() as c:
            while not stop.is_set():
                try:
                    results.append(c.get("http://reviews:9080/").status_code)
                except Exception as e:
                    results.append(repr(e))
                time.sleep(0.01)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(0.3)
        first = reviews.issued.serial
        assert first in reviews.served_serials()
        for _ in range(3):
            issued = reviews.rotate(datetime.timedelta(minutes=5))
            client.rotate()
            deadline = time.monotonic() + 5
            while issued.serial not in reviews.served_serials():
                assert time.monotonic() < deadline, "Envoy never took the new certificate"
                time.sleep(0.05)
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(10)
    assert len(results) > 20
    assert [r for r in results if r != 200] == []
    assert reviews.served_serials() == {reviews.issued.serial}
