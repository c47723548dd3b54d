"""What `ami apply` put in the store, kept on disk across control plane restarts.

    kept = Applied(store, state_dir / "applied.json")
    kept.load()        # at start, before anything is served
    kept.save()        # after each change of the applied resources (cheap when none)

The file is a Kubernetes `List` of the applied resources as `ami get -o json` shows
them; it is read back through the same parser as any config.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from amimesh.config.store import Store
from amimesh.controlplane import api_json
from amimesh.resources import parse_object

log = logging.getLogger(__name__)

MAX_FILE = 64 * 1024 * 1024


class Applied:
    def __init__(self, store: Store, path: Path) -> None:
        self.store = store
        self.path = path
        self._written: Any = None

    def _document(self) -> dict[str, Any]:
        # Secrets as they are: the file (0600) is the control plane's own memory.
        items = [
            api_json.resource_json(r, redact=False) for r in sorted(self.store.applied(), key=_key)
        ]
        return {"apiVersion": "v1", "kind": "List", "items": items}

    def load(self) -> None:
        if not self.path.exists():
            return
        try:
            if self.path.stat().st_size > MAX_FILE:
                raise ValueError(f"larger than {MAX_FILE} bytes")
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            log.error("cannot read the applied resources in %s: %s", self.path, e)
            return
        result = parse_object(data, str(self.path))
        for error in result.errors:
            log.error("applied resource left out: %s", error)
        result.errors.clear()
        self.store.apply(result)
        self._written = self._document()
        log.info("%d applied resource(s) taken back from %s", len(result.resources), self.path)

    def save(self) -> None:
        doc = self._document()
        if doc == self._written:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f)
            tmp.replace(self.path)
            self._written = doc


def _key(r: Any) -> tuple[str, str, str]:
    key: tuple[str, str, str] = r.key
    return key
