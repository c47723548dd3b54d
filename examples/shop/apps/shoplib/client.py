"""Calls to other services by their mesh names, through the proxy in HTTP_PROXY.

`urllib.request` reads HTTP_PROXY/NO_PROXY from the environment, so
`http://reviews:9080/...` reaches the sidecar's outbound listener unchanged.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class UpstreamError(Exception):
    """The call got no HTTP answer: refused, reset, or timed out."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    timeout: float = 3.0,
) -> Reply:
    """One HTTP request; any HTTP status is a `Reply`, no answer at all `UpstreamError`."""
    data = None
    sent = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        sent["content-type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=sent, method=method)
    # A fresh opener reads the proxy settings of the current environment.
    opener = urllib.request.build_opener()
    try:
        with opener.open(request, timeout=timeout) as response:
            return Reply(response.status, response.read(), response.headers.get_content_type())
    except urllib.error.HTTPError as err:
        with err:
            return Reply(err.code, err.read(), err.headers.get_content_type())
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise UpstreamError(f"{method} {url}: {err}") from err
