"""CloudEvents in HTTP binary mode, as a Knative sink takes them: attributes in `ce-`
headers, the data as the body.

An app sends events to `$K_SINK` (a SinkBinding sets it, with `$K_CE_OVERRIDES`: the
extensions to add to every event) and reads them from the `ce-` headers of a request.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from shoplib.client import UpstreamError, call
from shoplib.server import Request, Response, log


def attributes(request: Request) -> dict[str, str]:
    """The event's context attributes (and extensions) from a binary-mode request."""
    return {
        name[3:].lower(): value
        for name, value in request.headers.items()
        if name.lower().startswith("ce-")
    }


def reply(event_type: str, source: str, data: Any, status: int = 200) -> Response:
    """An answer that is itself an event (a broker puts it back in, for its triggers)."""
    headers = [
        ("ce-specversion", "1.0"),
        ("ce-id", uuid.uuid4().hex),
        ("ce-type", event_type),
        ("ce-source", source),
    ]
    body = json.dumps(data).encode()
    return Response(status, body, "application/json", headers)


class Publisher:
    """Sends events to the sink, each from a thread of its own: a sink that is slow or
    gone delays nothing and fails nothing of the request that made the event."""

    def __init__(self, service: str, env: Mapping[str, str], timeout: float = 10.0) -> None:
        self.service = service
        self.sink = env.get("K_SINK", "")
        overrides = json.loads(env.get("K_CE_OVERRIDES") or "{}")
        self.extensions: dict[str, str] = {
            str(k): str(v) for k, v in (overrides.get("extensions") or {}).items()
        }
        self.timeout = timeout

    def publish(
        self, event_type: str, event_id: str, data: Any, extensions: Mapping[str, str]
    ) -> threading.Thread | None:
        """Send one event in the background; None when the app has no sink."""
        if not self.sink:
            return None
        headers = {
            "ce-specversion": "1.0",
            "ce-id": event_id,
            "ce-type": event_type,
            "ce-source": f"/shop/{self.service}",
            **{f"ce-{k}": v for k, v in {**extensions, **self.extensions}.items()},
        }
        thread = threading.Thread(
            target=self._send, args=(event_type, event_id, headers, data), daemon=True
        )
        thread.start()
        return thread

    def _send(self, event_type: str, event_id: str, headers: dict[str, str], data: Any) -> None:
        try:
            answer = call("POST", self.sink, headers=headers, json_body=data, timeout=self.timeout)
            outcome = str(answer.status)
        except UpstreamError as err:
            outcome = f"not sent: {err}"
        log(self.service, f"event {event_type} {event_id} -> {self.sink}: {outcome}")
