"""What the pages show, as plain values: a book, its reviews, a cart line.

The upstream clients turn protobuf messages and JSON into these; the page renderer
takes only these, so it can be tested without any service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Book:
    id: int
    title: str
    author: str
    year: int
    pages: int
    description: str
    price_cents: int = 0


@dataclass(frozen=True)
class Rating:
    stars: int
    color: str


@dataclass(frozen=True)
class Review:
    reviewer: str
    text: str
    rating: Rating | None = None


@dataclass(frozen=True)
class Reviews:
    """What reviews answered: the version that served, the reviews, a ratings error."""

    version: str
    served_by: str
    reviews: tuple[Review, ...] = ()
    ratings_error: str | None = None

    @property
    def service(self) -> str:
        """`reviews-v2`: the name the page shows for the version that served."""
        return f"reviews-{self.version}"


@dataclass(frozen=True)
class CartLine:
    item: int
    quantity: int
    book: Book | None = None

    @property
    def cents(self) -> int:
        return self.quantity * (self.book.price_cents if self.book else 0)


@dataclass(frozen=True)
class Frontend:
    """Which frontend served the page (blue/green deployments show it)."""

    version: str = "v1"
    color: str = "blue"
    instance: str = ""


@dataclass(frozen=True)
class Page:
    """Everything the product page shows; None means that service did not answer."""

    product_id: int
    user: str | None
    book: Book | None
    reviews: Reviews | None
    books: tuple[Book, ...] = ()
    frontend: Frontend = field(default_factory=Frontend)


def reviews_from_json(data: Mapping[str, Any]) -> Reviews:
    """Parse the reviews service's answer; `ValueError` if it is not one."""
    try:
        items = []
        for entry in data["reviews"]:
            raw = entry.get("rating")
            rating = None
            if isinstance(raw, Mapping):
                rating = Rating(int(raw["stars"]), str(raw.get("color", "black")))
            items.append(Review(str(entry["reviewer"]), str(entry["text"]), rating))
        error = data.get("ratings_error")
        return Reviews(
            version=str(data.get("version", "?")),
            served_by=str(data.get("served_by", "")),
            reviews=tuple(items),
            ratings_error=str(error) if error else None,
        )
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"not a reviews answer: {err!r}") from err
