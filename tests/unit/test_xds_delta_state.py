"""The pure per-stream state machine, incremental (delta) variant."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from amimesh.translate.built import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyConfig
from amimesh.xds import samples
from amimesh.xds.stream import StreamState
from amimesh.xds.wire import DeltaRequest, ErrorDetail, Response

T0 = 100.0


def mesh(
    clusters: tuple[str, ...] = ("a", "b"), body: str = "v1", timeout_ms: int = 1000
) -> ProxyConfig:
    resources = [
        samples.listener("http", 15001, "routes"),
        samples.route_config("routes", body=body),
    ]
    for name in clusters:
        resources.append(samples.cluster(name, connect_timeout_ms=timeout_ms))
        resources.append(samples.load_assignment(name, [("127.0.0.1", 9000)]))
    return samples.proxy_config(*resources)


def sent(response: Response | None) -> tuple[list[str], list[str]]:
    assert response is not None
    return [b.name for b in response.resources], list(response.removed)


class Envoy:
    """Drives a StreamState the way Envoy's delta ADS client does."""

    def __init__(self, state: StreamState) -> None:
        self.state = state

    def request(
        self,
        type_url: str,
        subscribe: tuple[str, ...] = (),
        unsubscribe: tuple[str, ...] = (),
        initial: Mapping[str, str] | None = None,
        nonce: str = "",
    ) -> None:
        self.state.on_delta_request(
            DeltaRequest(type_url, subscribe, unsubscribe, dict(initial or {}), nonce), at=3.0
        )

    def answer(self, response: Response | None, error: str | None = None) -> None:
        assert response is not None
        self.state.on_delta_request(
            DeltaRequest(
                response.type_url,
                response_nonce=response.nonce,
                error=ErrorDetail(error) if error else None,
            ),
            at=4.0,
        )
        self.check_memo()

    def next(self, now: float = T0) -> Response | None:
        response = self.state.next_response(now)
        self.check_memo()
        return response

    def check_memo(self) -> None:
        """The memoised sync state agrees with one computed from scratch."""
        state = self.state
        memoised = state.sync_state()
        assert memoised == (state.synced(), state.synced(accept_nacks=True))
        state._required.clear()
        assert state.sync_state() == memoised

    def sync(self) -> list[Response]:
        out = []
        while (response := self.next()) is not None:
            out.append(response)
            self.answer(response)
        return out


def connect(config: ProxyConfig) -> Envoy:
    state = StreamState("delta")
    state.set_config(config)
    envoy = Envoy(state)
    envoy.request(CLUSTER)
    envoy.request(LISTENER)
    cds = envoy.next()
    assert sent(cds) == (sorted(config[CLUSTER]), [])
    envoy.answer(cds)
    envoy.request(ENDPOINT, subscribe=tuple(sorted(config.get(CLUSTER, {}))))
    assert [r.type_url for r in envoy.sync()] == [ENDPOINT, LISTENER]
    envoy.request(ROUTE, subscribe=("routes",))
    assert [r.type_url for r in envoy.sync()] == [ROUTE]
    assert state.synced()
    return envoy


@pytest.fixture
def envoy() -> Envoy:
    return connect(mesh())


def test_only_changed_names_are_sent(envoy: Envoy) -> None:
    config = mesh()
    config[ENDPOINT]["b"] = samples.load_assignment("b", [("127.0.0.1", 9999)])
    assert envoy.state.set_config(config)
    responses = envoy.sync()
    assert [(r.type_url, *sent(r)) for r in responses] == [(ENDPOINT, ["b"], [])]


def test_a_deleted_cluster_is_removed_and_a_changed_one_refreshes_its_cla(envoy: Envoy) -> None:
    envoy.state.set_config(mesh(clusters=("a",), timeout_ms=2000))
    cds = envoy.next()
    assert cds is not None and sent(cds) == (["a"], ["b"])
    envoy.answer(cds)
    envoy.request(ENDPOINT, unsubscribe=("b",))
    eds = envoy.next()
    assert eds is not None and eds.type_url == ENDPOINT and sent(eds) == (["a"], [])
    envoy.answer(eds)
    assert envoy.next() is None and envoy.state.synced()


def test_removals_wait_until_the_routes_are_accepted(envoy: Envoy) -> None:
    envoy.state.set_config(mesh(clusters=("a",), body="v2"))
    rds = envoy.next()
    assert rds is not None and rds.type_url == ROUTE and sent(rds) == (["routes"], [])
    envoy.answer(rds)
    responses = envoy.sync()
    assert [(r.type_url, *sent(r)) for r in responses] == [
        (CLUSTER, [], ["b"]),
        (ENDPOINT, [], ["b"]),
    ]
    assert envoy.state.synced()


def test_subscribing_to_a_missing_name_reports_it_removed_then_sends_it_later(
    envoy: Envoy,
) -> None:
    envoy.request(ENDPOINT, subscribe=("c",))
    eds = envoy.next()
    assert sent(eds) == ([], ["c"])
    envoy.answer(eds)
    assert envoy.next() is None
    envoy.state.set_config(mesh(clusters=("a", "b", "c")))
    cds = envoy.next()
    assert sent(cds) == (["c"], [])
    envoy.answer(cds)
    eds = envoy.next()
    assert eds is not None and eds.type_url == ENDPOINT and sent(eds) == (["c"], [])


def test_resubscribing_resends_even_if_unchanged(envoy: Envoy) -> None:
    envoy.request(ROUTE, subscribe=("routes",))
    assert sent(envoy.next()) == (["routes"], [])


def test_unsubscribing_a_name_needs_no_response(envoy: Envoy) -> None:
    envoy.request(ROUTE, unsubscribe=("routes",))
    assert envoy.next() is None
    envoy.request(ROUTE, subscribe=("routes",))
    assert sent(envoy.next()) == (["routes"], [])


def test_unsubscribing_a_name_also_under_wildcard_tells_the_client(envoy: Envoy) -> None:
    envoy.request(CLUSTER, subscribe=("a", "zzz"))
    cds = envoy.next()
    assert sent(cds) == (["a"], ["zzz"])
    envoy.answer(cds)
    envoy.request(CLUSTER, unsubscribe=("a", "zzz"))
    # "a" is still covered by the wildcard: sent; "zzz" is not: removed.
    assert sent(envoy.next()) == (["a"], ["zzz"])


def test_explicit_wildcard_subscription() -> None:
    state = StreamState("delta")
    state.set_config(mesh())
    envoy = Envoy(state)
    envoy.request(CLUSTER, subscribe=("*",))
    assert sent(envoy.next()) == (["a", "b"], [])
    assert state.status()[0].wildcard


def test_initial_resource_versions_avoid_resending_on_reconnect() -> None:
    before = mesh()
    held = {n: b.version for n, b in before[CLUSTER].items()}
    held["gone"] = "0123"
    after = mesh(clusters=("a", "b", "c"))
    state = StreamState("delta")
    state.set_config(after)
    envoy = Envoy(state)
    envoy.request(CLUSTER, initial=held)
    assert sent(envoy.next()) == (["c"], ["gone"])


def test_first_request_is_answered_even_with_nothing_to_send() -> None:
    state = StreamState("delta")
    state.set_config(mesh())
    envoy = Envoy(state)
    held = {n: b.version for n, b in mesh()[CLUSTER].items()}
    envoy.request(CLUSTER, initial=held)
    response = envoy.next()
    assert sent(response) == ([], [])
    envoy.answer(response)
    assert not state.status()[0].awaiting_ack
    # Synced only once the clusters it kept have their endpoints.
    assert not state.synced()
    envoy.request(ENDPOINT, subscribe=("a", "b"))
    envoy.answer(envoy.next())
    assert state.synced()


def test_nack_is_recorded_and_the_rejected_version_not_resent(envoy: Envoy) -> None:
    envoy.state.set_config(mesh(body="bad"))
    rds = envoy.next()
    envoy.answer(rds, error="bad regex")
    assert envoy.next() is None
    routes = envoy.state.status()[3]
    assert routes.rejected and routes.last_nack is not None
    assert routes.last_nack.resource_names == ("routes",)
    assert routes.last_nack.message == "bad regex" and routes.last_nack.at == 4.0
    # Back to the config the proxy still runs: sent again, since it differs from
    # what was last sent.
    envoy.state.set_config(mesh(body="v1"))
    responses = envoy.sync()
    assert [sent(r) for r in responses] == [(["routes"], [])]
    assert not envoy.state.status()[3].rejected


def test_subscription_changes_count_even_with_a_stale_nonce(envoy: Envoy) -> None:
    envoy.state.set_config(mesh(body="v2"))
    rds = envoy.next()
    assert rds is not None
    envoy.request(ENDPOINT, subscribe=("c",), nonce="1")  # stale nonce
    envoy.state.set_config(mesh(clusters=("a", "b", "c"), body="v2"))
    envoy.answer(rds)
    status = {s.type_url: s for s in envoy.state.status()}
    assert "c" in status[ENDPOINT].subscribed
    assert status[ROUTE].acked_version == rds.version


def test_a_stale_nack_is_ignored(envoy: Envoy) -> None:
    envoy.state.set_config(mesh(body="v2"))
    rds = envoy.next()
    assert rds is not None
    envoy.state.on_delta_request(
        DeltaRequest(ROUTE, response_nonce="1", error=ErrorDetail("old")), at=5.0
    )
    status = envoy.state.status()[3]
    assert status.awaiting_ack and not status.rejected and status.last_nack is None


def test_streams_in_sync_with_one_table_share_it_and_a_nack_parts_them() -> None:
    config = mesh()
    one, two = connect(config), connect(config)
    for envoy in (one, two):
        types = {t: envoy.state._types[t] for t in (CLUSTER, ENDPOINT)}
        for t, state in types.items():
            assert state.delivered_names() == config[t].keys()
            assert state._known.table is config[t]  # type: ignore[attr-defined]
            assert state._accepted is state._known  # type: ignore[attr-defined]
    # A rejected table is delivered, not accepted; the next good one agrees again.
    changed = mesh(timeout_ms=3000)
    one.state.set_config(changed)
    cds = one.next()
    one.answer(cds, error="bad cluster")
    cluster_state = one.state._types[CLUSTER]
    assert cluster_state.delivered_names() == changed[CLUSTER].keys()
    assert cluster_state._accepted.table is config[CLUSTER]  # type: ignore[attr-defined]
    fixed = mesh(timeout_ms=4000)
    one.state.set_config(fixed)
    responses = one.sync()
    assert [r.type_url for r in responses][0] == CLUSTER
    assert cluster_state._accepted.get("a") == fixed[CLUSTER]["a"].version  # type: ignore[attr-defined]
    assert one.state.synced()
