"""The reviews service: `GET /reviews/{id}`; v2 and v3 call ratings for the stars."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from shoplib.client import UpstreamError, call
from shoplib.server import Request, Response, Route, health, json_response, log, serve

from reviews import stars
from reviews.data import reviews_of


def fetch_ratings(
    product_id: int, headers: Mapping[str, str], base_url: str, timeout: float
) -> dict[str, int] | None:
    """Stars by reviewer from the ratings service, or None if it did not answer well."""
    try:
        reply = call("GET", f"{base_url}/ratings/{product_id}", headers=headers, timeout=timeout)
    except UpstreamError as err:
        log("reviews", f"ratings call failed: {err}")
        return None
    if not reply.ok:
        log("reviews", f"ratings answered {reply.status}")
        return None
    try:
        found = reply.json()["ratings"]
        return {str(k): int(v) for k, v in found.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        log("reviews", "ratings answered something that is not ratings")
        return None


def make_routes(env: Mapping[str, str]) -> list[Route]:
    version = stars.version_from(env)
    served_by = env.get("AMI_INSTANCE") or socket.gethostname()
    ratings_url = env.get("RATINGS_URL", "http://ratings:9080").rstrip("/")
    timeout = float(env.get("RATINGS_TIMEOUT", "10"))

    def get_reviews(request: Request) -> Response:
        product_id = int(request.params["id"])
        ratings = None
        if stars.uses_ratings(version):
            ratings = fetch_ratings(product_id, request.propagated(), ratings_url, timeout)
        body = stars.reviews_response(
            product_id, version, served_by, reviews_of(product_id), ratings
        )
        return json_response(body)

    return [
        Route("GET", "/health", health),
        Route("GET", r"/reviews/(?P<id>\d{1,9})", get_reviews),
    ]


def main() -> None:
    routes = make_routes(os.environ)
    serve(f"reviews-{stars.version_from(os.environ)}", routes)
