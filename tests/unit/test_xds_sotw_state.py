"""The pure per-stream state machine, state-of-the-world variant."""

from __future__ import annotations

import pytest

from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, Built, ProxyConfig
from amimesh.xds import samples
from amimesh.xds.stream import StreamState
from amimesh.xds.typestate import set_version
from amimesh.xds.wire import ErrorDetail, Response, SotwRequest

T0 = 100.0


def mesh(body: str = "v1", timeout_ms: int = 1000, extra_cluster: bool = False) -> ProxyConfig:
    resources = [
        samples.cluster("backend", connect_timeout_ms=timeout_ms),
        samples.cluster("static", eds=False, endpoints=[("127.0.0.1", 8080)]),
        samples.load_assignment("backend", [("127.0.0.1", 9000)]),
        samples.listener("http", 15001, "routes"),
        samples.route_config("routes", body=body),
    ]
    if extra_cluster:
        resources += [
            samples.cluster("extra"),
            samples.load_assignment("extra", [("127.0.0.1", 9001)]),
        ]
    return samples.proxy_config(*resources)


def names(response: Response | None) -> list[str]:
    assert response is not None
    return [b.name for b in response.resources]


class Envoy:
    """Drives a StreamState the way Envoy's SotW ADS client talks to a server."""

    def __init__(self, state: StreamState) -> None:
        self.state = state
        self.nonce: dict[str, str] = {}
        self.version: dict[str, str] = {}
        self.names: dict[str, tuple[str, ...]] = {}

    def request(self, type_url: str, *names: str, nonce: str | None = None) -> None:
        self.names[type_url] = names
        self.state.on_sotw_request(
            SotwRequest(
                type_url,
                names,
                self.version.get(type_url, ""),
                self.nonce.get(type_url, "") if nonce is None else nonce,
            ),
            at=1.0,
        )

    def answer(self, response: Response | None, error: str | None = None) -> None:
        assert response is not None
        t = response.type_url
        self.nonce[t] = response.nonce
        if error is None:
            self.version[t] = response.version
        self.state.on_sotw_request(
            SotwRequest(
                t,
                self.names.get(t, ()),
                self.version.get(t, ""),
                response.nonce,
                ErrorDetail(error) if error else None,
            ),
            at=2.0,
        )

    def next(self, now: float = T0) -> Response | None:
        return self.state.next_response(now)

    def sync(self) -> list[str]:
        """Answer everything the server sends (following CDS->EDS, LDS->RDS); the
        type URLs of the responses in arrival order."""
        seen = []
        while (response := self.next()) is not None:
            seen.append(response.type_url)
            self.answer(response)
        return seen


@pytest.fixture
def envoy() -> Envoy:
    state = StreamState("sotw")
    state.set_config(mesh())
    return Envoy(state)


def initial_sync(envoy: Envoy) -> None:
    envoy.request(CLUSTER)
    envoy.request(LISTENER)
    cds = envoy.next()
    assert names(cds) == ["backend", "static"]
    assert envoy.next() is None, "nothing goes while CDS awaits its ACK"
    envoy.answer(cds)
    # CDS accepted, but the EDS cluster has no CLA yet: LDS must wait for it.
    assert envoy.next() is None
    envoy.request(ENDPOINT, "backend")
    eds = envoy.next()
    assert eds is not None and eds.type_url == ENDPOINT and names(eds) == ["backend"]
    envoy.answer(eds)
    lds = envoy.next()
    assert lds is not None and lds.type_url == LISTENER
    envoy.answer(lds)
    envoy.request(ROUTE, "routes")
    rds = envoy.next()
    assert rds is not None and rds.type_url == ROUTE and names(rds) == ["routes"]
    envoy.answer(rds)
    assert envoy.next() is None
    assert envoy.state.synced()


def test_initial_sync_in_push_order_waiting_for_acks(envoy: Envoy) -> None:
    initial_sync(envoy)
    status = {s.type_url: s for s in envoy.state.status()}
    assert [s.type_url for s in envoy.state.status()] == [CLUSTER, ENDPOINT, LISTENER, ROUTE]
    assert status[CLUSTER].wildcard and status[ENDPOINT].subscribed == ("backend",)
    for s in status.values():
        assert s.acked_version == s.sent_version != ""
        assert not s.awaiting_ack and not s.rejected and s.last_nack is None


def test_nonces_are_unique_on_a_stream_and_versions_digest_the_set(envoy: Envoy) -> None:
    envoy.request(CLUSTER)
    cds = envoy.next()
    assert cds is not None
    envoy.answer(cds)
    envoy.request(ENDPOINT, "backend")
    eds = envoy.next()
    assert eds is not None and eds.nonce != cds.nonce
    clusters = envoy.state.status()[0]
    config = mesh()[CLUSTER]
    assert clusters.sent_version == set_version((n, b.version) for n, b in config.items())


def test_unchanged_config_sends_nothing(envoy: Envoy) -> None:
    initial_sync(envoy)
    assert envoy.state.set_config(mesh()) is False
    assert envoy.next() is None


def test_only_the_changed_type_is_pushed(envoy: Envoy) -> None:
    initial_sync(envoy)
    assert envoy.state.set_config(mesh(body="v2"))
    assert envoy.sync() == [ROUTE]


def test_a_changed_eds_cluster_gets_a_fresh_load_assignment(envoy: Envoy) -> None:
    initial_sync(envoy)
    # Only the cluster changes; its CLA is identical but must be sent again so
    # the re-created cluster can warm.
    envoy.state.set_config(mesh(timeout_ms=2000))
    assert envoy.sync() == [CLUSTER, ENDPOINT]


def test_a_new_eds_cluster_holds_listeners_until_its_endpoints_went_out(envoy: Envoy) -> None:
    initial_sync(envoy)
    config = mesh(extra_cluster=True)
    config[LISTENER] = {"http": samples.listener("http", 15002, "routes")}
    envoy.state.set_config(config)
    cds = envoy.next()
    assert names(cds) == ["backend", "extra", "static"]
    envoy.answer(cds)
    # "backend" did not change, so no fresh EDS; "extra" is not subscribed yet.
    assert envoy.next() is None, "the listener must wait for extra's endpoints"
    envoy.request(ENDPOINT, "backend", "extra")
    eds = envoy.next()
    assert names(eds) == ["backend", "extra"]
    envoy.answer(eds)
    lds = envoy.next()
    assert lds is not None and lds.type_url == LISTENER


def test_endpoints_flow_while_envoy_holds_its_cds_ack(envoy: Envoy) -> None:
    initial_sync(envoy)
    config = mesh(timeout_ms=2000, extra_cluster=True)
    config[LISTENER] = {"http": samples.listener("http", 15002, "routes")}
    envoy.state.set_config(config)
    cds = envoy.next()
    assert names(cds) == ["backend", "extra", "static"]
    # Envoy answers CDS only once the changed and new clusters warmed: their CLAs
    # must go out meanwhile, the listener must not.
    eds = envoy.next()
    assert eds is not None and eds.type_url == ENDPOINT and names(eds) == ["backend"]
    envoy.answer(eds)
    envoy.request(ENDPOINT, "backend", "extra")
    eds = envoy.next()
    assert names(eds) == ["backend", "extra"]
    envoy.answer(eds)
    assert envoy.next() is None
    envoy.answer(cds)
    assert envoy.sync() == [LISTENER]


def test_routes_flow_while_the_listener_awaits_its_ack(envoy: Envoy) -> None:
    initial_sync(envoy)
    config = mesh(body="v2")
    config[LISTENER] = {"http": samples.listener("http", 15002, "routes")}
    envoy.state.set_config(config)
    lds = envoy.next()
    rds = envoy.next()
    assert lds is not None and lds.type_url == LISTENER
    assert rds is not None and rds.type_url == ROUTE


def test_secrets_go_first_and_other_types_wait_only_for_themselves() -> None:
    from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
    from google.protobuf import struct_pb2

    runtime = "type.googleapis.com/envoy.service.runtime.v3.Runtime"
    config = mesh()
    config[SECRET] = {"cert": Built(SECRET, "cert", secret_pb2.Secret(name="cert"))}
    config[runtime] = {"rt": Built(runtime, "rt", struct_pb2.Struct())}
    state = StreamState("sotw")
    state.set_config(config)
    envoy = Envoy(state)
    envoy.request(CLUSTER)
    envoy.request(SECRET, "cert")
    envoy.request(runtime, "rt")
    sds = envoy.next()
    assert sds is not None and sds.type_url == SECRET
    other = envoy.next()
    assert other is not None and other.type_url == runtime
    assert envoy.next() is None, "clusters wait for the secret they may need"
    envoy.answer(sds)
    cds = envoy.next()
    assert cds is not None and cds.type_url == CLUSTER


def test_a_removed_cluster_stays_until_the_routes_moved_away() -> None:
    state = StreamState("sotw")
    state.set_config(mesh(extra_cluster=True))
    envoy = Envoy(state)
    envoy.request(CLUSTER)
    envoy.request(LISTENER)
    envoy.answer(envoy.next())
    envoy.request(ENDPOINT, "backend", "extra")
    envoy.request(ROUTE, "routes")
    assert envoy.sync() == [ENDPOINT, LISTENER, ROUTE]
    # "extra" goes, and the routes change (they may have pointed at it).
    state.set_config(mesh(body="v2"))
    rds = envoy.next()
    assert rds is not None and rds.type_url == ROUTE
    assert not state.synced()
    envoy.answer(rds)
    cds = envoy.next()
    assert names(cds) == ["backend", "static"]
    envoy.answer(cds)
    envoy.request(ENDPOINT, "backend")
    envoy.sync()
    assert state.synced()


def test_a_removed_cluster_stays_while_the_new_routes_are_rejected() -> None:
    state = StreamState("sotw")
    state.set_config(mesh(extra_cluster=True))
    envoy = Envoy(state)
    envoy.request(CLUSTER)
    envoy.answer(envoy.next())
    envoy.request(ENDPOINT, "backend", "extra")
    envoy.request(ROUTE, "routes")
    envoy.sync()
    state.set_config(mesh(body="bad"))
    envoy.answer(envoy.next(), error="rejected")
    assert envoy.next() is None, "the proxy still routes by the old config"
    assert state.synced(accept_nacks=True) and not state.synced()
    state.set_config(mesh(body="good"))
    assert envoy.sync() == [ROUTE, CLUSTER]
    assert state.status()[0].resources_sent == 3 + 2


def test_an_ack_wait_is_dropped_after_the_timeout() -> None:
    state = StreamState("sotw", ack_timeout=5.0)
    state.set_config(mesh())
    envoy = Envoy(state)
    envoy.request(CLUSTER)
    envoy.request(LISTENER)
    assert envoy.next(T0) is not None  # CDS, never answered
    assert envoy.next(T0 + 1) is None
    assert state.next_deadline(T0 + 1) == T0 + 5.0
    lds = envoy.next(T0 + 5.0)
    assert lds is not None and lds.type_url == LISTENER
    assert state.next_deadline(T0 + 5.0) == T0 + 10.0


def test_nack_is_recorded_and_not_resent(envoy: Envoy) -> None:
    initial_sync(envoy)
    good = envoy.state.status()[3].acked_version
    envoy.state.set_config(mesh(body="bad"))
    rds = envoy.next()
    envoy.answer(rds, error="invalid regex")
    assert envoy.next() is None, "a rejected config is not sent again"
    assert envoy.state.set_config(mesh(body="bad")) is False
    assert envoy.next() is None
    routes = envoy.state.status()[3]
    assert routes.rejected and routes.acked_version == good
    assert routes.last_nack is not None
    assert routes.last_nack.message == "invalid regex"
    assert routes.last_nack.resource_names == ("routes",)
    assert routes.last_nack.version == routes.sent_version != good
    assert not envoy.state.synced() and envoy.state.synced(accept_nacks=True)
    # A new config goes out, and its ACK clears the rejection (the record stays).
    envoy.state.set_config(mesh(body="v3"))
    assert envoy.sync() == [ROUTE]
    routes = envoy.state.status()[3]
    assert not routes.rejected and routes.last_nack is not None and envoy.state.synced()


def test_a_stale_nonce_is_ignored(envoy: Envoy) -> None:
    initial_sync(envoy)
    envoy.state.set_config(mesh(body="v2"))
    rds = envoy.next()
    assert rds is not None
    # A request carrying the previous nonce predates the response: no ACK, no
    # subscription change.
    old_nonce = envoy.nonce[ROUTE]
    envoy.request(ROUTE, "routes", "other", nonce=old_nonce)
    routes = envoy.state.status()[3]
    assert routes.awaiting_ack and routes.subscribed == ("routes",)
    envoy.answer(rds)
    assert envoy.state.status()[3].acked_version == rds.version


def test_eds_and_rds_carry_only_subscribed_names_that_exist(envoy: Envoy) -> None:
    envoy.state.set_config(mesh(extra_cluster=True))
    envoy.request(ENDPOINT, "extra", "missing")
    assert names(envoy.next()) == ["extra"]


def test_a_grown_subscription_is_answered_even_if_nothing_changed(envoy: Envoy) -> None:
    envoy.state.set_config(mesh(extra_cluster=True))
    envoy.request(ENDPOINT, "backend")
    envoy.answer(envoy.next())
    envoy.request(ENDPOINT, "backend", "extra")
    assert names(envoy.next()) == ["backend", "extra"]


def test_an_empty_named_response_is_not_sent(envoy: Envoy) -> None:
    envoy.request(ENDPOINT, "missing")
    assert envoy.next() is None
    assert envoy.state.synced()


def test_wildcard_empty_first_request_then_explicit_names() -> None:
    state = StreamState("sotw")
    state.set_config(mesh(extra_cluster=True))
    envoy = Envoy(state)
    envoy.request(CLUSTER)  # empty first request: wildcard (legacy)
    cds = envoy.next()
    assert names(cds) == ["backend", "extra", "static"]
    envoy.names[CLUSTER] = ("backend",)
    envoy.answer(cds)  # now explicitly "backend" only: the response set shrinks
    cds = envoy.next()
    assert names(cds) == ["backend"]
    assert state.status()[0].wildcard is False
    envoy.names[CLUSTER] = ("*", "backend")
    envoy.answer(cds)
    assert state.status()[0].wildcard is True
    assert names(envoy.next()) == ["backend", "extra", "static"]


def test_cds_and_lds_carry_the_whole_set_and_a_deleted_one_is_left_out(envoy: Envoy) -> None:
    initial_sync(envoy)
    config = mesh()
    del config[CLUSTER]["static"]
    envoy.state.set_config(config)
    assert names(envoy.next()) == ["backend"]


def test_request_of_the_wrong_variant_is_refused() -> None:
    with pytest.raises(ValueError):
        StreamState("delta").on_sotw_request(SotwRequest(CLUSTER), at=0.0)
