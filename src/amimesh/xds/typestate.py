"""What the two protocol variants share about one xDS type on one stream.

A type on a stream has at most one response awaiting its answer. The answer is
matched by nonce: the nonce of the last response sent makes an ACK (no
`error_detail`) or a NACK (`error_detail` set); any other nonce is stale.
Subclasses decide what to send (SotW whole sets, delta differences); this class keeps
the bookkeeping: nonces, versions, what was accepted, the last rejection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal

from amimesh.translate.built import Built, pair_digest
from amimesh.xds.status import Nack, TypeSyncStatus
from amimesh.xds.wire import ErrorDetail, Response

# How a request relates to the responses already sent on its stream.
Answer = Literal["first", "ack", "nack", "stale", "update"]


def set_version(versions: Iterable[tuple[str, str]]) -> str:
    """A version for a set of resources, from their (name, version) pairs: the sum of
    the pairs' digests, so no sorting, and the same set always gives the same version,
    on any stream and after a restart."""
    return _fold(sum(pair_digest(name, version) for name, version in versions))


def table_version(table: Mapping[str, Built]) -> str:
    """`set_version` of a generated table's names and versions, from each resource's
    digest, computed once per resource however many tables hold it."""
    found = _TABLE_VERSIONS.get(id(table))
    if found is not None and found[0] is table:
        return found[1]
    total = 0
    for name, built in table.items():
        total += built.set_digest if name == built.name else pair_digest(name, built.version)
    version = _fold(total)
    if len(_TABLE_VERSIONS) >= _MAX_TABLE_VERSIONS:
        _TABLE_VERSIONS.clear()
    _TABLE_VERSIONS[id(table)] = (table, version)
    return version


# id(table) -> (table, its version), for tables many streams hold: the table is kept
# so that its id stays its own. Generated tables are never changed once made.
_TABLE_VERSIONS: dict[int, tuple[Mapping[str, Built], str]] = {}
_MAX_TABLE_VERSIONS = 256


def _fold(total: int) -> str:
    return f"{total & _MASK:032x}"


_MASK = (1 << 128) - 1


@dataclass(frozen=True)
class _Sent:
    response: Response
    sent_at: float


class TypeState(ABC):
    """Sync state of one type URL on one stream; pure, no I/O, no clock reads."""

    def __init__(self, type_url: str) -> None:
        self.type_url = type_url
        self.resources: Mapping[str, Built] = {}
        self._first_unanswered = True
        self._last_sent: _Sent | None = None
        self._awaiting = False
        self._acked_version = ""
        self._rejected = False
        self._last_nack: Nack | None = None
        self._responses_sent = 0
        self._resources_sent = 0
        # Resources of the last response that the client did not already have.
        self.last_changed: tuple[Built, ...] = ()
        # Bumped whenever `accepted_names()` may have changed.
        self.accepted_epoch = 0
        # Bumped whenever `delivered_names()` may have changed.
        self.delivered_epoch = 0

    # -- what to send: the protocol variants ----------------------------------------

    @abstractmethod
    def needs_response(self) -> bool:
        """Whether this type has something the client must be sent now."""

    @abstractmethod
    def _build(self, nonce: str) -> Response:
        """The response to send now; commits it as sent."""

    @abstractmethod
    def refresh(self, names: Iterable[str]) -> None:
        """Send these names again even if unchanged (clusters re-warming need their CLA)."""

    @abstractmethod
    def delivered_names(self) -> AbstractSet[str]:
        """Names the client holds or has been sent, as far as the server knows (a view)."""

    def holds(self, table: Mapping[str, Built]) -> bool:
        """Whether the client was delivered exactly `table` (if the variant can tell
        cheaply; False when it cannot)."""
        return False

    @abstractmethod
    def accepted_names(self) -> AbstractSet[str]:
        """Names of resources the client has acknowledged (a view)."""

    @abstractmethod
    def subscription(self) -> tuple[bool, tuple[str, ...]]:
        """(wildcard, explicitly subscribed names)."""

    @abstractmethod
    def _on_ack(self, response: Response) -> None: ...

    @abstractmethod
    def _resources_changed(self) -> None: ...

    # -- shared bookkeeping ---------------------------------------------------------

    def set_resources(self, resources: Mapping[str, Built]) -> bool:
        """Take the resources now generated for this type; True if any version changed."""
        old = self.resources
        self.resources = resources
        if old is resources:
            return False
        changed = old.keys() != resources.keys() or any(
            old[name] is not built and old[name].version != built.version
            for name, built in resources.items()
        )
        if changed:
            self._resources_changed()
        return changed

    def emit(self, nonce: str, now: float) -> Response:
        """Build the next response, mark it as awaiting its answer, and return it."""
        response = self._build(nonce)
        self.delivered_epoch += 1
        self._first_unanswered = False
        self._last_sent = _Sent(response, now)
        self._awaiting = True
        self._responses_sent += 1
        self._resources_sent += len(response.resources)
        return response

    def classify(self, response_nonce: str) -> Answer:
        """Relate a request's nonce to what was sent, without changing any state."""
        if self._last_sent is None or not response_nonce:
            return "update"
        if response_nonce != self._last_sent.response.nonce:
            return "stale"
        return "ack" if self._awaiting else "update"

    def answer(self, error: ErrorDetail | None, at: float) -> Nack | None:
        """Record the answer to the response awaiting one: ACK, or NACK if `error`."""
        assert self._last_sent is not None and self._awaiting
        response = self._last_sent.response
        self._awaiting = False
        if error is None:
            self._acked_version = response.version
            self._rejected = False
            self._on_ack(response)
            self.accepted_epoch += 1
            return None
        self._rejected = True
        self._last_nack = Nack(
            type_url=self.type_url,
            nonce=response.nonce,
            version=response.version,
            message=error.message,
            code=error.code,
            resource_names=response.names(),
            at=at,
        )
        return self._last_nack

    def awaiting_since(self) -> float | None:
        """When the response now awaiting its answer was sent, or None."""
        if self._awaiting and self._last_sent is not None:
            return self._last_sent.sent_at
        return None

    def last_sent_at(self) -> float | None:
        """When the last response of this type was sent, or None."""
        return None if self._last_sent is None else self._last_sent.sent_at

    def settled(self, *, accept_nacks: bool) -> bool:
        """Nothing to send and nothing awaiting an answer (and, unless `accept_nacks`,
        the last answer was an ACK)."""
        if self._awaiting or self.needs_response():
            return False
        return accept_nacks or not self._rejected

    def status(self) -> TypeSyncStatus:
        """A snapshot of this type for `XdsServer.status()`."""
        wildcard, names = self.subscription()
        sent = self._last_sent.response if self._last_sent else None
        return TypeSyncStatus(
            type_url=self.type_url,
            wildcard=wildcard,
            subscribed=names,
            sent_version=sent.version if sent else "",
            sent_nonce=sent.nonce if sent else "",
            acked_version=self._acked_version,
            awaiting_ack=self._awaiting,
            rejected=self._rejected,
            last_nack=self._last_nack,
            responses_sent=self._responses_sent,
            resources_sent=self._resources_sent,
        )

    @property
    def acked_version(self) -> str:
        """The version of the last response the client accepted ("" if none)."""
        return self._acked_version

    @property
    def first_unanswered(self) -> bool:
        """True until the first response of this type is sent on the stream."""
        return self._first_unanswered
