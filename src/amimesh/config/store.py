"""The in-process config store: resources by source, errors, and live instances.

Every producer of config (a directory of YAML files, the HTTP API, a Kubernetes watch)
writes through this API. A source's update either validates completely, and replaces
that source's resources, or it does not, and the source keeps its last good resources
while its errors are recorded. So a broken file never takes working config away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from amimesh.model.snapshot import Instance
from amimesh.resources import ConfigError, ParseResult
from amimesh.resources.meta import Resource

log = logging.getLogger(__name__)

Key = tuple[str, str, str]
Listener = Callable[[], None]


@dataclass
class SourceState:
    """What one source (usually one file) contributes, and why it may be stale."""

    resources: dict[Key, Resource] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)


class Store:
    """Thread-safe: sources may write from any thread; listeners run in the writer's thread."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sources: dict[str, SourceState] = {}
        self._instances: dict[str, Instance] = {}
        self._listeners: list[Listener] = []
        self._version = 0

    # --- reading -----------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Increases on every change that may alter the mesh."""
        return self._version

    def resources(self) -> list[Resource]:
        with self._lock:
            seen: dict[Key, Resource] = {}
            for name in sorted(self._sources):
                for key, r in self._sources[name].resources.items():
                    seen.setdefault(key, r)
            return list(seen.values())

    def get(self, key: Key) -> Resource | None:
        with self._lock:
            for name in sorted(self._sources):
                r = self._sources[name].resources.get(key)
                if r is not None:
                    return r
        return None

    def errors(self) -> list[ConfigError]:
        """Every current error; a source with errors is serving its last good config."""
        with self._lock:
            return [e for name in sorted(self._sources) for e in self._sources[name].errors]

    def instances(self) -> list[Instance]:
        with self._lock:
            return list(self._instances.values())

    # --- writing -----------------------------------------------------------------------

    def set_source(self, source: str, result: ParseResult) -> list[ConfigError]:
        """Replace what `source` contributes, unless `result` has errors.

        A resource already owned by another source is an error too. Returns the
        errors now recorded for `source` (empty when the update was applied).
        """
        with self._lock:
            state = self._sources.setdefault(source, SourceState())
            errors = list(result.errors) + self._conflicts(source, result.resources)
            if errors:
                state.errors = errors
                for e in errors:
                    log.warning("config error, keeping last good config: %s", e)
                self._changed()
                return errors
            resources = {r.key: r for r in result.resources}
            if resources == state.resources and not state.errors:
                return []
            state.resources = resources
            state.errors = []
            self._changed()
            return []

    def remove_source(self, source: str) -> None:
        with self._lock:
            if self._sources.pop(source, None) is not None:
                self._changed()

    def sources(self) -> list[str]:
        with self._lock:
            return sorted(self._sources)

    def register_instance(self, instance: Instance) -> None:
        """Add or replace a live instance (endpoints follow its `ready` flag)."""
        with self._lock:
            if self._instances.get(instance.id) == instance:
                return
            self._instances[instance.id] = instance
            self._changed()

    def deregister_instance(self, instance_id: str) -> None:
        with self._lock:
            if self._instances.pop(instance_id, None) is not None:
                self._changed()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` after every change; returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # --- internals ---------------------------------------------------------------------

    def _conflicts(self, source: str, resources: Sequence[Resource]) -> list[ConfigError]:
        out = []
        for r in resources:
            for other, state in self._sources.items():
                if other != source and r.key in state.resources:
                    out.append(
                        ConfigError(
                            file=source,
                            document=None,
                            line=None,
                            ref=r.ref,
                            field="metadata.name",
                            message=f"{r.ref} is already defined in {other}",
                        )
                    )
        return out

    def _changed(self) -> None:
        self._version += 1
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("config listener failed")


def apply_all(store: Store, items: Iterable[tuple[str, ParseResult]]) -> None:
    """Set several sources in turn (helper for sources that load many files at once)."""
    for source, result in items:
        store.set_source(source, result)
