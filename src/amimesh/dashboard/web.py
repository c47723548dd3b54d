"""The dashboard's pages and assets, served by the control plane's HTTP API.

    GET /dashboard/                  the page (static/index.html), under a strict CSP
    GET /dashboard/static/PATH       its scripts, styles and the vendored cytoscape.js

The page reads the JSON API (`/api/v1/...`) with the browser's cookie. Signing in is
the API's auth middleware's job; this module gives it the pieces: the cookie's name,
the sign-in redirect (`GET /dashboard/?token=T` → cookie, then `/dashboard/`) and the
401 page that says to run `ami dashboard`.
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

from aiohttp import web

ROOT = "/dashboard"
INDEX = f"{ROOT}/"
STATIC_PREFIX = f"{ROOT}/static/"
STATIC = Path(__file__).resolve().parent / "static"

# Self only, no inline script or style, no framing, no forms posting anywhere.
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    "": "text/plain; charset=utf-8",  # LICENSE
}
# Where `?token=T` signs a browser in.
SIGN_IN_PATHS = frozenset({ROOT, INDEX})
HINT = "run `ami dashboard` to open the dashboard with the mesh's token"


def routes() -> list[web.RouteDef]:
    return [
        web.get(ROOT, _to_index),
        web.get(INDEX, index),
        web.get(STATIC_PREFIX + "{path:.+}", static),
    ]


def cookie_name(token: str) -> str:
    """The sign-in cookie of the mesh with API token `token`. Cookies do not tell
    ports apart, so two meshes on one host each need their own name; a digest of the
    token gives that (its value is the token itself)."""
    return "ami_dashboard_" + hashlib.sha256(token.encode()).hexdigest()[:12]


def is_dashboard(path: str) -> bool:
    return path == ROOT or path.startswith(INDEX)


def sign_in(token: str) -> web.Response:
    """The answer to `GET /dashboard/?token=T` with the right token: the cookie, and a
    redirect to the same page without the token in its URL."""
    response = web.Response(
        status=303,
        text="signed in; continue to /dashboard/\n",
        headers={"Location": INDEX, "Cache-Control": "no-store", **SECURITY_HEADERS},
    )
    response.set_cookie(cookie_name(token), token, path="/", httponly=True, samesite="Strict")
    return response


def unauthorized(request: web.Request, reason: str) -> web.Response:
    """401 for a dashboard request without a valid token: a short page for a browser,
    JSON for anything else."""
    headers = {"Cache-Control": "no-store", **SECURITY_HEADERS}
    if "text/html" in request.headers.get("Accept", ""):
        page = (
            "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
            "<title>Ami dashboard: sign in</title></head>\n<body><h1>Not signed in</h1>\n"
            f"<p>{html.escape(reason)}.</p>\n<p>Run <code>ami dashboard</code> "
            "(or <code>ami dashboard --print-url</code>): it opens this page with the "
            "mesh's token.</p>\n"
            "</body></html>\n"
        )
        return web.Response(
            status=401, text=page, content_type="text/html", charset="utf-8", headers=headers
        )
    return web.json_response(
        {"error": f"unauthorized: {reason}; {HINT}"}, status=401, headers=headers
    )


async def _to_index(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect(INDEX)


async def index(request: web.Request) -> web.FileResponse:
    return _file(STATIC / "index.html", {"Cache-Control": "no-store"})


async def static(request: web.Request) -> web.FileResponse:
    path = _static_path(request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound(reason=f"no such dashboard file: {request.match_info['path']}")
    return _file(path, {"Cache-Control": "no-cache"})


def _static_path(rel: str) -> Path | None:
    """The file `rel` names under static/, or None: no hidden files, nothing outside,
    only the types the page uses."""
    parts = rel.split("/")
    if any(not p or p.startswith(".") for p in parts):
        return None
    path = (STATIC / rel).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file():
        return None
    if path.suffix not in CONTENT_TYPES or path.name == "index.html":
        return None
    return path


def _file(path: Path, headers: dict[str, str]) -> web.FileResponse:
    if not path.is_file():
        raise web.HTTPNotFound(reason=f"dashboard file {path.name} is missing")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": CONTENT_TYPES[path.suffix],
            **SECURITY_HEADERS,
            **headers,
        },
    )
