"""What each reviews version returns (examples/shop/apps/reviews/stars.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parents[2] / "examples" / "shop" / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

from reviews import stars  # noqa: E402

REVIEWS = [{"reviewer": "Reviewer1", "text": "a"}, {"reviewer": "Reviewer2", "text": "b"}]
RATINGS = {"Reviewer1": 5, "Reviewer2": 4}


def test_v1_has_no_stars_and_does_not_use_ratings() -> None:
    assert not stars.uses_ratings("v1")
    body = stars.reviews_response(1, "v1", "r-0", REVIEWS, None)
    assert body == {
        "id": 1,
        "version": "v1",
        "served_by": "r-0",
        "reviews": [{"reviewer": "Reviewer1", "text": "a"}, {"reviewer": "Reviewer2", "text": "b"}],
    }


@pytest.mark.parametrize(("version", "color"), [("v2", "black"), ("v3", "red")])
def test_v2_black_and_v3_red_stars(version: str, color: str) -> None:
    assert stars.uses_ratings(version)
    body = stars.reviews_response(7, version, "r-0", REVIEWS, RATINGS)
    assert body["version"] == version
    assert [r["rating"] for r in body["reviews"]] == [
        {"stars": 5, "color": color},
        {"stars": 4, "color": color},
    ]
    assert "ratings_error" not in body


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_ratings_failure_is_reported_not_fatal(version: str) -> None:
    body = stars.reviews_response(1, version, "r-0", REVIEWS, None)
    assert body["ratings_error"] == "Ratings service is currently unavailable"
    assert [r["text"] for r in body["reviews"]] == ["a", "b"]
    assert all("rating" not in r for r in body["reviews"])


def test_a_reviewer_without_a_rating_gets_none() -> None:
    body = stars.reviews_response(1, "v3", "r-0", REVIEWS, {"Reviewer1": 9})
    assert body["reviews"][0]["rating"] == {"stars": 5, "color": "red"}  # clamped
    assert body["reviews"][1]["rating"] is None


@pytest.mark.parametrize(
    ("env", "version"),
    [
        ({"REVIEWS_VERSION": "v2"}, "v2"),
        ({"REVIEWS_VERSION": "V3", "AMI_WORKLOAD": "reviews-v2"}, "v3"),
        ({"AMI_WORKLOAD": "reviews-v3"}, "v3"),
        ({"AMI_WORKLOAD": "reviews"}, "v1"),
        ({}, "v1"),
    ],
)
def test_version_from_env_or_workload_name(env: dict[str, str], version: str) -> None:
    assert stars.version_from(env) == version


def test_unknown_version_is_an_error() -> None:
    with pytest.raises(ValueError, match="REVIEWS_VERSION"):
        stars.version_from({"REVIEWS_VERSION": "v4"})
