"""The per-stream state machine: what an ADS stream sends next, and in which order.

Pure: it takes requests, generated configs and the current time as values, and
returns the next response to write. The servicer is a thin shell around it.

Ordering (make before break, as the xDS protocol's eventual-consistency notes ask):
types go out in the order SDS, CDS, EDS, LDS, RDS (`PUSH_ORDER`, secrets first since
clusters and listeners warm on them), and a type waits while a response of its own
type or of an earlier one awaits its answer, except its parent's (EDS does not wait
for CDS, nor RDS for LDS). Any other type only waits for its own answer.

Envoy withholds its CDS ACK until updated clusters have warmed, and a cluster warms
only when its ClusterLoadAssignment arrives. So right after a CDS response, the
changed EDS clusters get their CLA again, and LDS leaves only once CDS is ACKed, that
is, once the clusters are warm. LDS also waits until every accepted EDS cluster's CLA
went out (for clients that ACK at once), so a route never names a cluster still
warming. Removed clusters go last, once listeners and routes are accepted (see
`removals`). A client that never answers does not block a stream forever: after
`ack_timeout` the wait is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from amimesh.translate.built import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    PUSH_ORDER,
    ROUTE,
    SECRET,
    Built,
    ProxyConfig,
)
from amimesh.xds import deps, removals
from amimesh.xds.delta import DeltaTypeState
from amimesh.xds.sotw import SotwTypeState
from amimesh.xds.status import Mode, Nack, TypeSyncStatus
from amimesh.xds.typestate import Answer, TypeState
from amimesh.xds.wire import DeltaRequest, Response, SotwRequest

_NO_RESOURCES: Mapping[str, Built] = {}
# A type is not held back by its parent's unanswered response: Envoy withholds its
# CDS ACK until the updated clusters have warmed, which takes their EDS.
_PARENT = {child: parent for parent, child in deps.CHILD_TYPE.items()}
_ORDERED = (SECRET, *PUSH_ORDER)


@dataclass(frozen=True)
class RequestOutcome:
    """How the state machine took one request (for logs and metrics)."""

    type_url: str
    answer: Answer
    nack: Nack | None = None


class StreamState:
    """Sync state of one ADS stream (one proxy connection), SotW or delta."""

    def __init__(self, mode: Mode, *, ack_timeout: float = 10.0) -> None:
        self.mode: Mode = mode
        self.ack_timeout = ack_timeout
        self._types: dict[str, TypeState] = {}
        self._config: ProxyConfig = {}
        self._nonce = 0
        # Per parent type: the children its accepted resources need, delivered or not.
        self._required: dict[str, _Required] = {}
        self._retained = removals.Retained()

    # -- inputs ---------------------------------------------------------------------

    def set_config(self, config: ProxyConfig) -> bool:
        """Take everything now generated for this proxy.

        True if a type the client subscribes to changed (the writer should wake).
        """
        previous, self._config = self._config, config
        delivered = {t: s.delivered_names() for t, s in self._types.items()}
        self._retained.update(previous, config, delivered)
        changed = False
        for state in self._types.values():
            if state.set_resources(self._resources(state.type_url)):
                changed = True
        return self._release_removals() or changed

    def _resources(self, type_url: str) -> Mapping[str, Built]:
        return self._retained.merged(type_url, self._config.get(type_url, _NO_RESOURCES))

    def _routes_accepted(self) -> bool:
        states = (self._types.get(t) for t in (LISTENER, ROUTE))
        return all(s.settled(accept_nacks=False) for s in states if s is not None)

    def _release_removals(self) -> bool:
        """Let retained removals go once listeners and routes are accepted."""
        if not self._retained or not self._routes_accepted():
            return False
        self._retained.release()
        for type_url in removals.DEFERRED:
            state = self._types.get(type_url)
            if state is not None:
                state.set_resources(self._resources(type_url))
        return True

    def on_sotw_request(self, request: SotwRequest, *, at: float) -> RequestOutcome:
        """Apply a SotW request. A stale nonce makes the whole request ignored: the
        client answers every response, and that later answer carries its current
        subscription. `at` (wall clock) stamps a NACK."""
        if self.mode != "sotw":
            raise ValueError("SotW request on a delta stream")
        state, first = self._type(request.type_url)
        assert isinstance(state, SotwTypeState)
        answer: Answer = "first" if first else state.classify(request.response_nonce)
        if answer == "stale":
            return RequestOutcome(request.type_url, answer)
        nack = None
        if answer == "ack":
            nack = state.answer(request.error, at)
            answer = "nack" if nack else "ack"
        state.subscribe(request.resource_names)
        return RequestOutcome(request.type_url, answer, nack)

    def on_delta_request(self, request: DeltaRequest, *, at: float) -> RequestOutcome:
        """Apply a delta request. Subscription changes count whatever the nonce; the
        ACK or NACK only when the nonce is the last one sent for the type."""
        if self.mode != "delta":
            raise ValueError("delta request on a SotW stream")
        state, first = self._type(request.type_url)
        assert isinstance(state, DeltaTypeState)
        answer: Answer = "first" if first else state.classify(request.response_nonce)
        nack = None
        if answer == "ack":
            nack = state.answer(request.error, at)
            answer = "nack" if nack else "ack"
        state.subscribe(
            request.subscribe, request.unsubscribe, request.initial_versions, first=first
        )
        return RequestOutcome(request.type_url, answer, nack)

    def _type(self, type_url: str) -> tuple[TypeState, bool]:
        state = self._types.get(type_url)
        if state is not None:
            return state, False
        state = SotwTypeState(type_url) if self.mode == "sotw" else DeltaTypeState(type_url)
        state.set_resources(self._resources(type_url))
        self._types[type_url] = state
        return state, True

    # -- outputs --------------------------------------------------------------------

    def next_response(self, now: float) -> Response | None:
        """The next response to write, or None if nothing may go now.

        Call again after writing it; `now` is a monotonic time in seconds.
        """
        self._release_removals()
        ordered = self._next_ordered(now)
        if ordered is not None:
            return self._emit(ordered, now)
        for type_url, other in self._types.items():
            if type_url not in _ORDERED and self._sendable(other, now):
                return self._emit(other, now)
        return None

    def next_deadline(self, now: float) -> float | None:
        """The next time after `now` when a wait may be dropped (see `ack_timeout`)."""
        times = [s.awaiting_since() for s in self._types.values()]
        cds = self._types.get(CLUSTER)
        if cds is not None and not self._endpoints_ready(now):
            times.append(cds.last_sent_at())
        deadlines = [t + self.ack_timeout for t in times if t is not None]
        future = [d for d in deadlines if d > now]
        return min(future) if future else None

    def synced(self, *, accept_nacks: bool = False) -> bool:
        """Nothing to send, nothing awaiting an answer, (unless `accept_nacks`) every
        type's last response accepted, and the endpoints and routes of the accepted
        clusters and listeners delivered (so a proxy is not called synced between its
        LDS ACK and its RDS subscription)."""
        if self._retained and self._routes_accepted():
            return False  # the removals are about to go
        if not all(s.settled(accept_nacks=accept_nacks) for s in self._types.values()):
            return False
        return all(self._children_delivered(parent) for parent in deps.CHILD_TYPE)

    def sync_state(self) -> tuple[bool, bool]:
        """(`synced()`, `synced(accept_nacks=True)`), computed once."""
        if self._retained and self._routes_accepted():
            return False, False
        if not all(s.settled(accept_nacks=True) for s in self._types.values()):
            return False, False
        if not all(self._children_delivered(parent) for parent in deps.CHILD_TYPE):
            return False, False
        return all(s.settled(accept_nacks=False) for s in self._types.values()), True

    def status(self) -> tuple[TypeSyncStatus, ...]:
        """Per type the client asked for, in push order."""
        return tuple(self._types[t].status() for t in self._order() if t in self._types)

    # -- ordering -------------------------------------------------------------------

    def _order(self) -> list[str]:
        others = sorted(t for t in self._types if t not in _ORDERED)
        return [*_ORDERED, *others]

    def _next_ordered(self, now: float) -> TypeState | None:
        """The first type of SDS, CDS, EDS, LDS, RDS that may and must send now."""
        awaiting: list[str] = []
        for type_url in _ORDERED:
            if any(t != _PARENT.get(type_url) for t in awaiting):
                return None
            state = self._types.get(type_url)
            if state is not None:
                if self._waiting(state, now):
                    awaiting.append(type_url)
                    continue
                if state.needs_response():
                    return state
            if type_url == ENDPOINT and not self._endpoints_ready(now):
                return None
        return None

    def _sendable(self, state: TypeState, now: float) -> bool:
        return not self._waiting(state, now) and state.needs_response()

    def _waiting(self, state: TypeState, now: float) -> bool:
        since = state.awaiting_since()
        return since is not None and now - since < self.ack_timeout

    def _emit(self, state: TypeState, now: float) -> Response:
        self._nonce += 1
        response = state.emit(str(self._nonce), now)
        if state.type_url == CLUSTER:
            endpoints = self._types.get(ENDPOINT)
            if endpoints is not None:
                endpoints.refresh(n for b in state.last_changed for n in deps.children(b))
        return response

    def _endpoints_ready(self, now: float) -> bool:
        """Whether LDS may go: the accepted EDS clusters' CLAs were delivered, or CDS
        went out more than `ack_timeout` ago."""
        if self._children_delivered(CLUSTER):
            return True
        sent_at = self._types[CLUSTER].last_sent_at()
        return sent_at is not None and now - sent_at >= self.ack_timeout

    def _children_delivered(self, parent_type: str) -> bool:
        parent = self._types.get(parent_type)
        if parent is None:
            return True
        child_type = deps.CHILD_TYPE[parent_type]
        parents = self._config.get(parent_type, _NO_RESOURCES)
        available = self._config.get(child_type, _NO_RESOURCES)
        child = self._types.get(child_type)
        child_epoch = -1 if child is None else child.delivered_epoch
        memo = self._required.get(parent_type)
        if (
            memo is not None
            and memo.accepted_epoch == parent.accepted_epoch
            and memo.child_epoch == child_epoch
            and memo.parents is parents
            and memo.available is available
        ):
            return memo.delivered
        if child is not None and child.holds(available):
            delivered = True  # every child there is went out
        else:
            held = child.delivered_names() if child is not None else frozenset[str]()
            delivered = not deps.missing(parent.accepted_names(), parents, available, held)
        self._required[parent_type] = _Required(
            parent.accepted_epoch, parents, available, child_epoch, delivered
        )
        return delivered


@dataclass(frozen=True)
class _Required:
    """Whether the child type delivered what a parent type's accepted resources
    need, as of the epochs and tables it was computed for. The generator keeps a
    table's object while none of its resources change, so it holds across config
    changes that touch neither table."""

    accepted_epoch: int
    parents: Mapping[str, Built]
    available: Mapping[str, Built]
    child_epoch: int
    delivered: bool
