"""The recommendations service, serverless: a Knative Service that starts at zero.

`GET /recommendations/{id}` -> {"id": id, "also": [ids], "revision": K_REVISION}: the
books readers of book `id` also bought. Knative's runtime contract gives it `$PORT`
and `K_REVISION`; it knows nothing else of the platform.
"""

from __future__ import annotations

import os

from shoplib.server import Request, Response, Route, health, json_response, serve

ALSO: dict[int, list[int]] = {1: [2, 4], 2: [1, 3], 3: [4], 4: [1, 2, 3]}


def recommendations(request: Request) -> Response:
    product_id = int(request.params["id"])
    return json_response(
        {
            "id": product_id,
            "also": ALSO.get(product_id, []),
            "revision": os.environ.get("K_REVISION", ""),
        }
    )


ROUTES = [
    Route("GET", "/health", health),
    Route("GET", r"/recommendations/(?P<id>\d{1,9})", recommendations),
]


def main() -> None:
    serve("recommendations", ROUTES)
