"""State-of-the-world sync of one type on one stream.

Every response carries a whole set: for a wildcard subscription (CDS, LDS) everything
generated for the proxy, where a missing name means deleted; for named subscriptions
(EDS, RDS) every subscribed name that exists. The response's version is the digest of
that set, so an unchanged set is never sent twice, whatever the proxy answered. A
named subscription gets a response only when a resource in it changed or a name was
added, since SotW cannot tell a client that a named resource is gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from amimesh.translate.built import Built
from amimesh.xds.typestate import TypeState, set_version
from amimesh.xds.wire import WILDCARD, Response


class SotwTypeState(TypeState):
    """One type URL on a SotW ADS stream."""

    def __init__(self, type_url: str) -> None:
        super().__init__(type_url)
        self._wildcard = False
        self._names: frozenset[str] = frozenset()
        self._explicit_seen = False
        self._sent_subscription: tuple[bool, frozenset[str]] | None = None
        self._sent_versions: dict[str, str] = {}
        self._accepted: frozenset[str] = frozenset()
        self._refresh = False
        self._plan: tuple[dict[str, Built], str] | None = None

    def subscribe(self, resource_names: Iterable[str]) -> None:
        """Apply the `resource_names` of a request that is not stale.

        An empty list means wildcard until the client names something explicitly;
        after that it means "nothing" (the protocol's legacy rule).
        """
        names = tuple(resource_names)
        if not names and not self._explicit_seen:
            wildcard, explicit = True, frozenset[str]()
        else:
            self._explicit_seen = True
            wildcard = WILDCARD in names
            explicit = frozenset(n for n in names if n != WILDCARD)
        if (wildcard, explicit) != (self._wildcard, self._names):
            self._wildcard, self._names = wildcard, explicit
            self._plan = None

    def _want(self) -> tuple[dict[str, Built], str]:
        if self._plan is None:
            wanted = self.resources.keys() if self._wildcard else self._names
            want = {n: self.resources[n] for n in sorted(wanted) if n in self.resources}
            version = set_version((name, b.version) for name, b in want.items())
            self._plan = (want, version)
        return self._plan

    def needs_response(self) -> bool:
        want, version = self._want()
        if not self._wildcard and not want:
            # Nothing the client named exists: an empty EDS/RDS response changes
            # nothing on the client, and some clients never answer it.
            return False
        if self.first_unanswered or self._refresh or self._last_sent is None:
            return True
        if self._wildcard:
            # Whole set: a deletion is news too.
            changed = version != self._last_sent.response.version
        else:
            # Named: a name that disappeared cannot be told, only changes can.
            sent = self._sent_versions
            changed = any(sent.get(n) != b.version for n, b in want.items())
        return changed or self._subscription_grew()

    def _subscription_grew(self) -> bool:
        # Newly requested names must be sent even if the server sent them before.
        if self._sent_subscription is None:
            return True
        sent_wildcard, sent_names = self._sent_subscription
        return (self._wildcard and not sent_wildcard) or not self._names <= sent_names

    def _build(self, nonce: str) -> Response:
        want, version = self._want()
        previous = self._sent_versions
        self.last_changed = tuple(b for n, b in want.items() if previous.get(n) != b.version)
        self._sent_subscription = (self._wildcard, self._names)
        self._sent_versions = {n: b.version for n, b in want.items()}
        self._refresh = False
        return Response(self.type_url, nonce, version, tuple(want.values()))

    def refresh(self, names: Iterable[str]) -> None:
        want, _ = self._want()
        if any(name in want for name in names):
            self._refresh = True

    def delivered_names(self) -> AbstractSet[str]:
        return self._sent_versions.keys()

    def accepted_names(self) -> AbstractSet[str]:
        return self._accepted

    def subscription(self) -> tuple[bool, tuple[str, ...]]:
        return self._wildcard, tuple(sorted(self._names))

    def _on_ack(self, response: Response) -> None:
        self._accepted = frozenset(b.name for b in response.resources)

    def _resources_changed(self) -> None:
        self._plan = None
