"""Incremental (delta) sync of one type on one stream.

The server tracks, per name, the version the client holds (or was last sent) and
sends only names whose version differs, plus `removed_resources` for names the client
must drop or that it asked for and do not exist. A rejected resource stays recorded
as sent, so it is not sent again until its generated version changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet

from amimesh.translate.built import Built
from amimesh.xds.typestate import TypeState, set_version
from amimesh.xds.wire import WILDCARD, Response


class DeltaTypeState(TypeState):
    """One type URL on a delta ADS stream."""

    def __init__(self, type_url: str) -> None:
        super().__init__(type_url)
        self._wildcard = False
        self._explicit: set[str] = set()
        # name -> version the client holds, or was sent and has not yet answered.
        self._known: dict[str, str] = {}
        self._accepted: dict[str, str] = {}
        # Names to mention in the next response even if unchanged.
        self._force: set[str] = set()
        self._plan: tuple[tuple[Built, ...], tuple[str, ...]] | None = None

    def subscribe(
        self,
        subscribe: Iterable[str],
        unsubscribe: Iterable[str],
        initial_versions: Mapping[str, str],
        *,
        first: bool,
    ) -> None:
        """Apply one request's subscription changes (whatever its nonce).

        On the first request of the type, an empty subscribe and unsubscribe means
        wildcard, and `initial_versions` tells what the client kept from a previous
        stream, so unchanged resources are not sent again.
        """
        subscribe, unsubscribe = tuple(subscribe), tuple(unsubscribe)
        if first:
            if not subscribe and not unsubscribe:
                self._wildcard = True
            self._known = dict(initial_versions)
            self._accepted = dict(initial_versions)
        for name in subscribe:
            if name == WILDCARD:
                self._wildcard = True
                continue
            self._explicit.add(name)
            # A (re)subscribed name is sent even if the client seems to have it:
            # it may have forgotten it. Except what it just declared it holds.
            if not (first and name in initial_versions):
                self._force.add(name)
        for name in unsubscribe:
            if name == WILDCARD:
                self._wildcard = False
                continue
            self._explicit.discard(name)
            if self._wildcard:
                # The client cannot tell whether the wildcard still covers it.
                self._force.add(name)
            else:
                self._known.pop(name, None)
                self._accepted.pop(name, None)
        self._plan = None
        self.accepted_epoch += 1
        self.delivered_epoch += 1

    def _want(self) -> set[str]:
        names = set(self.resources) if self._wildcard else set()
        names.update(n for n in self._explicit if n in self.resources)
        return names

    def _diff(self) -> tuple[tuple[Built, ...], tuple[str, ...]]:
        if self._plan is None:
            want = self._want()
            send = tuple(
                self.resources[n]
                for n in sorted(want)
                if n in self._force or self._known.get(n) != self.resources[n].version
            )
            gone = {n for n in self._known if n not in want}
            gone.update(n for n in self._force if n not in want)
            self._plan = (send, tuple(sorted(gone)))
        return self._plan

    def needs_response(self) -> bool:
        send, removed = self._diff()
        return self.first_unanswered or bool(send) or bool(removed)

    def _build(self, nonce: str) -> Response:
        send, removed = self._diff()
        for built in send:
            self._known[built.name] = built.version
        for name in removed:
            self._known.pop(name, None)
        self._force.clear()
        self._plan = None
        self.last_changed = send
        version = set_version(self._known.items())
        return Response(self.type_url, nonce, version, send, removed)

    def refresh(self, names: Iterable[str]) -> None:
        want = self._want()
        fresh = {n for n in names if n in want}
        if fresh:
            self._force.update(fresh)
            self._plan = None

    def delivered_names(self) -> AbstractSet[str]:
        return self._known.keys()

    def accepted_names(self) -> AbstractSet[str]:
        return self._accepted.keys()

    def subscription(self) -> tuple[bool, tuple[str, ...]]:
        return self._wildcard, tuple(sorted(self._explicit))

    def _on_ack(self, response: Response) -> None:
        for built in response.resources:
            self._accepted[built.name] = built.version
        for name in response.removed:
            self._accepted.pop(name, None)

    def _resources_changed(self) -> None:
        self._plan = None
