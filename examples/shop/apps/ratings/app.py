"""The ratings service: `GET /ratings/{id}` -> {"id": id, "ratings": {reviewer: stars}}."""

from __future__ import annotations

from shoplib.server import Request, Response, Route, health, json_response, serve

# Stars each reviewer gave each book; a book not listed gets DEFAULT_RATINGS.
RATINGS: dict[int, dict[str, int]] = {
    1: {"Reviewer1": 5, "Reviewer2": 4},
    2: {"Reviewer1": 3, "Reviewer2": 5},
    3: {"Reviewer1": 4, "Reviewer2": 2},
    4: {"Reviewer1": 5, "Reviewer2": 5},
}
DEFAULT_RATINGS = {"Reviewer1": 5, "Reviewer2": 4}


def ratings_of(product_id: int) -> dict[str, int]:
    return dict(RATINGS.get(product_id, DEFAULT_RATINGS))


def get_ratings(request: Request) -> Response:
    product_id = int(request.params["id"])
    return json_response({"id": product_id, "ratings": ratings_of(product_id)})


ROUTES = [
    Route("GET", "/health", health),
    Route("GET", r"/ratings/(?P<id>\d{1,9})", get_ratings),
]


def main() -> None:
    serve("ratings", ROUTES)
