"""The `ami` commands' client for a running mesh's HTTP API.

    api = connect(args.mesh)                 # finds the mesh's state: API URL and token
    body = api.get("/api/v1/status")          # JSON, or ApiError with the server's message

Plain `urllib`, no proxy: the commands run where `HTTP_PROXY` may point at a sidecar.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from amimesh.runtime import state

TIMEOUT_S = 30.0


class NotRunning(RuntimeError):
    """No mesh found, or its control plane does not answer (exit code 2)."""


class ApiError(RuntimeError):
    """The API answered with an error; `errors` are its lines, `body` its JSON."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        errors = body.get("errors")
        if not isinstance(errors, list):
            errors = [str(body.get("error") or f"HTTP {status}")]
        super().__init__("; ".join(str(e) for e in errors))
        self.status = status
        self.body = dict(body)
        self.errors = [str(e) for e in errors]


class MeshClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        # No ProxyHandler: never send the token through HTTP_PROXY.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """The JSON answer of a 2xx response; `ApiError` for others, `NotRunning` when
        nothing answers."""
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v})
        req = urllib.request.Request(url, data=body, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        req.add_header("Accept", "application/json")
        if body is not None:
            req.add_header("Content-Type", content_type)
        try:
            with self._opener.open(req, timeout=self._timeout) as resp:
                return _decode(resp.read(), resp.status)
        except urllib.error.HTTPError as err:
            with err:
                raw = err.read()
            try:
                answer = _decode(raw, err.code)
            except ApiError:
                answer = {"error": f"HTTP {err.code} {err.reason}"}
            raise ApiError(err.code, answer) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            raise NotRunning(
                f"the mesh's control plane does not answer at {self.base_url} ({reason})"
            ) from None

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self.request("GET", path, params=params)

    def post_yaml(
        self, path: str, text: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return self.request(
            "POST", path, params=params, body=text.encode(), content_type="application/yaml"
        )

    def put_json(self, path: str, data: Any) -> dict[str, Any]:
        return self.request("PUT", path, body=json.dumps(data).encode())

    def delete(self, path: str) -> dict[str, Any]:
        return self.request("DELETE", path)


def _decode(raw: bytes, status: int) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError(status, {"error": f"HTTP {status}: not JSON"}) from None
    if not isinstance(data, dict):
        raise ApiError(status, {"error": f"HTTP {status}: unexpected answer"})
    return data


def connect(mesh: str | None, *, timeout: float = TIMEOUT_S) -> MeshClient:
    """A client for mesh `mesh` (a name, config directory or state path; None: the mesh
    started last). `NotRunning` with a hint when there is none."""
    try:
        found = state.find(mesh)
        info = found.read_info()
        token = found.read_token()
    except FileNotFoundError as err:
        raise NotRunning(str(err) if err.filename is None else _missing(err)) from None
    except (OSError, ValueError, TypeError) as err:
        raise NotRunning(f"cannot read the mesh's state: {err}") from None
    if not info.api:
        raise NotRunning(f"mesh {info.name} does not serve an API")
    if not _alive(info.pid):
        raise NotRunning(
            f"mesh {info.name} is not running (its process {info.pid} has exited); "
            "start it with `ami up DIR`"
        )
    return MeshClient(info.api, token, timeout=timeout)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # unknown: let the API call say
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _missing(err: FileNotFoundError) -> str:
    return f"the mesh's state is incomplete: {err.filename} is missing; is it still starting?"


def guarded(action: Callable[[], int]) -> int:
    """Run a command's body: a mesh that is not running exits 2, an API error exits 1,
    each with a one-line message per problem on stderr."""
    from amimesh.cli import render

    err = render.console(stderr=True)
    try:
        return action()
    except NotRunning as e:
        render.print_error(err, str(e))
        return 2
    except ApiError as e:
        for line in e.errors:
            render.print_error(err, line)
        return 1
