"""What each version of reviews adds to a review: nothing (v1), black (v2) or red (v3) stars.

Pure: the app fetches ratings and hands them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

VERSIONS = ("v1", "v2", "v3")
STAR_COLORS = {"v2": "black", "v3": "red"}
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"


def version_from(env: Mapping[str, str]) -> str:
    """The version this process plays: REVIEWS_VERSION, else the Workload's `-vN` suffix."""
    explicit = env.get("REVIEWS_VERSION", "").strip().lower()
    if explicit:
        if explicit not in VERSIONS:
            raise ValueError(f"REVIEWS_VERSION must be one of {', '.join(VERSIONS)}: {explicit}")
        return explicit
    workload = env.get("AMI_WORKLOAD", "")
    suffix = workload.rpartition("-")[2]
    return suffix if suffix in VERSIONS else "v1"


def uses_ratings(version: str) -> bool:
    return version in STAR_COLORS


def rating(version: str, stars: int | None) -> dict[str, Any] | None:
    """The `rating` of one review as this version returns it; None when it shows none."""
    color = STAR_COLORS.get(version)
    if color is None or stars is None:
        return None
    return {"stars": max(0, min(5, stars)), "color": color}


def reviews_response(
    product_id: int,
    version: str,
    served_by: str,
    reviews: list[dict[str, str]],
    ratings: Mapping[str, int] | None,
) -> dict[str, Any]:
    """The JSON body of `GET /reviews/{id}`.

    `reviews` are {"reviewer", "text"}; `ratings` maps reviewer to stars, or is None when
    this version uses ratings and could not get them (the body then says so).
    """
    body: dict[str, Any] = {
        "id": product_id,
        "version": version,
        "served_by": served_by,
        "reviews": [],
    }
    for review in reviews:
        entry: dict[str, Any] = {"reviewer": review["reviewer"], "text": review["text"]}
        if uses_ratings(version) and ratings is not None:
            entry["rating"] = rating(version, ratings.get(review["reviewer"]))
        body["reviews"].append(entry)
    if uses_ratings(version) and ratings is None:
        body["ratings_error"] = RATINGS_UNAVAILABLE
    return body
