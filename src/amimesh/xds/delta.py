"""Incremental (delta) sync of one type on one stream.

The server tracks, per name, the version the client holds (or was last sent) and
sends only names whose version differs, plus `removed_resources` for names the client
must drop or that it asked for and do not exist. A rejected resource stays recorded
as sent, so it is not sent again until its generated version changes.

What a client holds is, after nearly every response, exactly the table generated for
it (every name, each at its generated version), and the tables are shared by the
proxies they are generated for. So the per-name versions are kept as `Versions`: a
reference to that shared table while they equal it, a dict of its own only once they
differ; and what the client accepted is the very same object while it equals what
it holds. A thousand streams of one table then cost one table, not a thousand dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet

from amimesh.translate.built import Built
from amimesh.xds.typestate import TypeState, set_version, table_version
from amimesh.xds.wire import WILDCARD, Response


class Versions:
    """name -> version: the versions of a shared table (`table`), or of a dict of its
    own (`own`). Never changed in place: `with_changes` makes another, so one object
    may be shared (what was delivered and what was accepted, while they agree)."""

    __slots__ = ("_own", "_table")

    def __init__(
        self, *, table: Mapping[str, Built] | None = None, own: dict[str, str] | None = None
    ) -> None:
        self._table = table
        self._own = own if own is not None else {}

    @property
    def table(self) -> Mapping[str, Built] | None:
        """The shared table these versions are exactly, if they are."""
        return self._table

    def get(self, name: str) -> str | None:
        if self._table is not None:
            built = self._table.get(name)
            return None if built is None else built.version
        return self._own.get(name)

    def names(self) -> AbstractSet[str]:
        return self._table.keys() if self._table is not None else self._own.keys()

    def version(self) -> str:
        """The version of the whole set (`set_version`)."""
        if self._table is not None:
            return table_version(self._table)
        return set_version(self._own.items())

    def with_changes(
        self, set_: Iterable[tuple[str, str]] = (), drop: Iterable[str] = ()
    ) -> Versions:
        if self._table is not None:
            own = {name: built.version for name, built in self._table.items()}
        else:
            own = dict(self._own)
        own.update(set_)
        for name in drop:
            own.pop(name, None)
        return Versions(own=own)


_NOTHING = Versions()
# Explicit subscriptions, shared by the streams that ask for the same names (every
# Envoy of a mesh asks EDS for the same clusters). Bounded: forgetting only costs
# sharing.
_SUBSCRIPTIONS: dict[frozenset[str], frozenset[str]] = {}
_MAX_SUBSCRIPTIONS = 256


def _interned(names: frozenset[str]) -> frozenset[str]:
    found = _SUBSCRIPTIONS.get(names)
    if found is not None:
        return found
    if len(_SUBSCRIPTIONS) >= _MAX_SUBSCRIPTIONS:
        _SUBSCRIPTIONS.clear()
    _SUBSCRIPTIONS[names] = names
    return names


class DeltaTypeState(TypeState):
    """One type URL on a delta ADS stream."""

    def __init__(self, type_url: str) -> None:
        super().__init__(type_url)
        self._wildcard = False
        self._explicit: frozenset[str] = frozenset()
        # name -> version the client holds, or was sent and has not yet answered.
        self._known = _NOTHING
        # name -> version the client acknowledged (`_known` itself while they agree).
        self._accepted = _NOTHING
        # Whether `_accepted` equalled `_known` when the awaited response was built:
        # its ACK then makes them agree again.
        self._agreed_before_send = True
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
            self._known = self._accepted = Versions(own=dict(initial_versions))
        explicit = set(self._explicit)
        for name in subscribe:
            if name == WILDCARD:
                self._wildcard = True
                continue
            explicit.add(name)
            # A (re)subscribed name is sent even if the client seems to have it:
            # it may have forgotten it. Except what it just declared it holds.
            if not (first and name in initial_versions):
                self._force.add(name)
        forget: list[str] = []
        for name in unsubscribe:
            if name == WILDCARD:
                self._wildcard = False
                continue
            explicit.discard(name)
            if self._wildcard:
                # The client cannot tell whether the wildcard still covers it.
                self._force.add(name)
            else:
                forget.append(name)
        if forget:
            agreed = self._accepted is self._known
            self._known = self._known.with_changes(drop=forget)
            self._accepted = self._known if agreed else self._accepted.with_changes(drop=forget)
        if len(explicit) != len(self._explicit) or explicit != self._explicit:
            self._explicit = _interned(frozenset(explicit))
        self._plan = None
        self.accepted_epoch += 1
        self.delivered_epoch += 1

    def _want(self) -> AbstractSet[str]:
        """The names to keep the client in sync with: every generated one under a
        wildcard (or when it named them all), else those it named that exist."""
        if self._wildcard or self._explicit >= self.resources.keys():
            return self.resources.keys()
        return {n for n in self._explicit if n in self.resources}

    def _diff(self) -> tuple[tuple[Built, ...], tuple[str, ...]]:
        if self._plan is None:
            want = self._want()
            known = self._known
            if known.table is self.resources:
                # The client holds this very table: only what is forced goes again.
                send = tuple(self.resources[n] for n in sorted(self._force) if n in want)
                gone = {n for n in self._force if n not in want}
            else:
                send = tuple(self._changed(sorted(want)))
                gone = {n for n in known.names() if n not in want}
                gone.update(n for n in self._force if n not in want)
            self._plan = (send, tuple(sorted(gone)))
        return self._plan

    def _changed(self, names: Iterable[str]) -> Iterator[Built]:
        """The resources of `names` the client must be sent: forced, or at a version
        other than the one it holds (by identity first: a shared `Built` is the same
        object in every table that holds it)."""
        resources, force, known = self.resources, self._force, self._known
        held = known.table
        for name in names:
            built = resources[name]
            if name not in force:
                if held is not None:
                    old = held.get(name)
                    if old is built or (old is not None and old.version == built.version):
                        continue
                elif known.get(name) == built.version:
                    continue
            yield built

    def needs_response(self) -> bool:
        send, removed = self._diff()
        return self.first_unanswered or bool(send) or bool(removed)

    def _build(self, nonce: str) -> Response:
        send, removed = self._diff()
        self._agreed_before_send = self._accepted is self._known
        # The client now holds every wanted name at its generated version.
        want = self._want()
        if len(want) == len(self.resources):
            self._known = Versions(table=self.resources)
        elif send or removed:
            self._known = Versions(own={n: self.resources[n].version for n in want})
        self._force.clear()
        self._plan = None
        self.last_changed = send
        return Response(self.type_url, nonce, self._known.version(), send, removed)

    def refresh(self, names: Iterable[str]) -> None:
        want = self._want()
        fresh = {n for n in names if n in want}
        if fresh:
            self._force.update(fresh)
            self._plan = None

    def delivered_names(self) -> AbstractSet[str]:
        return self._known.names()

    def holds(self, table: Mapping[str, Built]) -> bool:
        return self._known.table is table

    def accepted_names(self) -> AbstractSet[str]:
        return self._accepted.names()

    def subscription(self) -> tuple[bool, tuple[str, ...]]:
        return self._wildcard, tuple(sorted(self._explicit))

    def _on_ack(self, response: Response) -> None:
        if self._agreed_before_send:
            # Accepted was what the client held; now it accepted what it was sent.
            self._accepted = self._known
            return
        self._accepted = self._accepted.with_changes(
            ((b.name, b.version) for b in response.resources), response.removed
        )

    def _resources_changed(self) -> None:
        self._plan = None
