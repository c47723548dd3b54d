"""The frontend's pages rendered from given data (examples/shop/apps/frontend/page.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parents[2] / "examples" / "shop" / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

from frontend import page  # noqa: E402
from frontend.views import (  # noqa: E402
    Book,
    CartLine,
    Frontend,
    Page,
    Rating,
    Review,
    Reviews,
    reviews_from_json,
)

BOOK = Book(1, "The Late Train", "Mara Ellison", 2019, 312, "A night train stops.", 1899)
OTHER = Book(2, "Notes <for> Engineers", "T. W.", 2021, 204, "Short chapters.", 2450)


def _reviews(version: str, color: str | None, error: str | None = None) -> Reviews:
    rating = Rating(4, color) if color else None
    return Reviews(
        version,
        f"reviews-{version}-0",
        (Review("Reviewer1", "Loved it.", rating), Review("Reviewer2", "Fine.", rating)),
        error,
    )


def test_product_page_shows_book_reviews_stars_and_version() -> None:
    view = Page(1, "jason", BOOK, _reviews("v3", "red"), (BOOK, OTHER))
    out = page.product_page(view)
    assert "The Late Train" in out and "Mara Ellison" in out and "$18.99" in out
    assert "Loved it." in out and "Reviewer2" in out
    assert out.count('class="stars stars-red"') == 2
    assert "\u2605\u2605\u2605\u2605\u2606" in out
    assert '<b class="reviews-version">reviews-v3</b>' in out
    assert "reviews-v3-0" in out
    assert 'Signed in as <b class="user">jason</b>' in out
    assert 'href="/productpage?id=2"' in out
    assert "unavailable" not in out


def test_v1_reviews_have_no_stars() -> None:
    out = page.product_page(Page(1, None, BOOK, _reviews("v1", None)))
    assert "stars" not in out
    assert "reviews-v1" in out
    assert 'action="/login"' in out  # a guest gets the sign-in form


def test_reviews_unavailable() -> None:
    out = page.product_page(Page(1, None, BOOK, None))
    assert "Sorry, product reviews are currently unavailable for this book." in out
    assert "The Late Train" in out


def test_ratings_unavailable_replaces_the_stars() -> None:
    reviews = _reviews("v2", None, "Ratings service is currently unavailable")
    out = page.product_page(Page(1, "jason", BOOK, reviews))
    assert out.count("Ratings service is currently unavailable") == 2
    assert "stars" not in out
    assert "reviews-v2" in out


def test_details_unavailable() -> None:
    out = page.product_page(Page(1, None, None, _reviews("v1", None)))
    assert "Sorry, product details are currently unavailable for this book." in out
    assert "Loved it." in out


def test_page_escapes_what_services_return() -> None:
    hostile = Book(3, "<script>x</script>", "A & B", 2000, 1, '"q"', 1)
    reviews = Reviews("v1", "<i>", (Review("<b>", "<img src=x>"),))
    out = page.product_page(Page(3, "a.b", hostile, reviews, (OTHER,)))
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<img" not in out and "&lt;b&gt;" in out and "A &amp; B" in out
    assert "Notes &lt;for&gt; Engineers" in out


@pytest.mark.parametrize(
    ("stars", "color", "glyphs", "css"),
    [
        (5, "black", "\u2605" * 5, "stars-black"),
        (0, "red", "\u2606" * 5, "stars-red"),
        (9, "red", "\u2605" * 5, "stars-red"),
        (3, "purple", "\u2605" * 3 + "\u2606" * 2, "stars-black"),
    ],
)
def test_stars(stars: int, color: str, glyphs: str, css: str) -> None:
    out = page.stars(Rating(stars, color))
    assert glyphs in out and css in out


def test_frontend_version_and_color_are_shown() -> None:
    green = Frontend("v2", "green", "frontend-green-0")
    out = page.product_page(Page(1, None, BOOK, None, frontend=green))
    assert 'class="theme-green"' in out
    assert "Page served by frontend-v2 (green), instance frontend-green-0" in out


def test_cart_page() -> None:
    lines = [CartLine(1, 2, BOOK), CartLine(7, 1, None)]
    out = page.cart_page("bob", lines, Frontend())
    assert "The Late Train" in out and "item 7" in out
    assert "$37.98" in out  # 2 x 18.99; an unknown item costs nothing
    assert 'action="/checkout"' in out
    assert "Your cart is empty." in page.cart_page("bob", [], Frontend())
    assert page.CART_UNAVAILABLE in page.cart_page("bob", None, Frontend())


def test_money() -> None:
    assert page.money(0) == "$0.00"
    assert page.money(1899) == "$18.99"
    assert page.money(120005) == "$1200.05"


def test_reviews_from_json() -> None:
    parsed = reviews_from_json(
        {
            "id": 1,
            "version": "v2",
            "served_by": "reviews-v2-0",
            "reviews": [
                {"reviewer": "Reviewer1", "text": "t", "rating": {"stars": 5, "color": "black"}},
                {"reviewer": "Reviewer2", "text": "u", "rating": None},
                {"reviewer": "Reviewer3", "text": "v"},
            ],
        }
    )
    assert parsed.service == "reviews-v2"
    assert parsed.reviews[0].rating == Rating(5, "black")
    assert parsed.reviews[1].rating is None and parsed.reviews[2].rating is None
    assert parsed.ratings_error is None
    with pytest.raises(ValueError):
        reviews_from_json({"version": "v1"})
    with pytest.raises(ValueError):
        reviews_from_json({"reviews": [{"text": "no reviewer"}]})
