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

# The source that `apply` and `delete` write: resources applied one by one through the
# API (`ami apply`), which take precedence over the same resources defined in files.
API_SOURCE = "api"


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
        self._config_version = 0

    # --- reading -----------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Increases on every change that may alter the mesh."""
        return self._version

    @property
    def config_version(self) -> int:
        """Increases on every change of resources or errors (not of instances)."""
        return self._config_version

    def _by_precedence(self) -> list[SourceState]:
        api = self._sources.get(API_SOURCE)
        rest = [self._sources[n] for n in sorted(self._sources) if n != API_SOURCE]
        return [api, *rest] if api is not None else rest

    def resources(self) -> list[Resource]:
        """Every resource in force: applied ones first, then those of each source."""
        with self._lock:
            seen: dict[Key, Resource] = {}
            for state in self._by_precedence():
                for key, r in state.resources.items():
                    seen.setdefault(key, r)
            return list(seen.values())

    def get(self, key: Key) -> Resource | None:
        with self._lock:
            for state in self._by_precedence():
                r = state.resources.get(key)
                if r is not None:
                    return r
        return None

    def source_of(self, key: Key) -> str | None:
        """Which source the resource in force for `key` comes from."""
        with self._lock:
            if key in self._sources.get(API_SOURCE, SourceState()).resources:
                return API_SOURCE
            for name in sorted(self._sources):
                if key in self._sources[name].resources:
                    return name
        return None

    def applied(self) -> list[Resource]:
        """The resources applied through the API (`ami apply`), in force or not."""
        with self._lock:
            return list(self._sources.get(API_SOURCE, SourceState()).resources.values())

    def source_resources(self, source: str) -> dict[Key, Resource]:
        """What `source` contributes (its last good resources), in force or not."""
        with self._lock:
            return dict(self._sources.get(source, SourceState()).resources)

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

    def apply(self, result: ParseResult) -> list[ConfigError]:
        """Create or replace each resource of `result`, as `kubectl apply` does.

        All or nothing: with any error nothing is applied. An applied resource takes
        precedence over one of the same kind, namespace and name defined in a file.
        """
        if result.errors:
            return list(result.errors)
        with self._lock:
            state = self._sources.setdefault(API_SOURCE, SourceState())
            changed = False
            for r in result.resources:
                if state.resources.get(r.key) != r:
                    state.resources[r.key] = r
                    changed = True
            if changed:
                self._changed()
        return []

    def delete(self, keys: Iterable[Key]) -> list[Key]:
        """Delete applied resources; returns the keys that were there.

        A resource defined in a file is not deleted this way (edit the file); if one
        was overridden by an applied resource, the file's version is in force again.
        """
        with self._lock:
            state = self._sources.get(API_SOURCE)
            if state is None:
                return []
            gone = [k for k in keys if state.resources.pop(k, None) is not None]
            if gone:
                self._changed()
            return gone

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
            self._changed(config=False)

    def deregister_instance(self, instance_id: str) -> None:
        with self._lock:
            if self._instances.pop(instance_id, None) is not None:
                self._changed(config=False)

    def replace_instances(self, old: Iterable[str], new: Iterable[Instance]) -> None:
        """Deregister the instances `old` and register `new`, as one change (a node
        agent's whole report)."""
        with self._lock:
            before = dict(self._instances)
            for iid in old:
                self._instances.pop(iid, None)
            for instance in new:
                self._instances[instance.id] = instance
            if self._instances != before:
                self._changed(config=False)

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
                if other in (source, API_SOURCE):
                    continue  # applied resources override file ones by design
                if r.key in state.resources:
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

    def _changed(self, *, config: bool = True) -> None:
        self._version += 1
        if config:
            self._config_version += 1
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("config listener failed")
