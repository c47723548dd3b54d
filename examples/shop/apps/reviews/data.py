"""What readers wrote, by book id. Reviewer names match the ratings service's keys."""

from __future__ import annotations

REVIEWS: dict[int, list[dict[str, str]]] = {
    1: [
        {
            "reviewer": "Reviewer1",
            "text": "I read it in one sitting on a delayed train and did not mind the delay.",
        },
        {
            "reviewer": "Reviewer2",
            "text": "The middle drags a little, but the last chapter makes up for it.",
        },
    ],
    2: [
        {
            "reviewer": "Reviewer1",
            "text": "Solid advice, though half of it is common sense in a nice jacket.",
        },
        {
            "reviewer": "Reviewer2",
            "text": "Changed how I keep my notes. Recommended to every new engineer.",
        },
    ],
    3: [
        {
            "reviewer": "Reviewer1",
            "text": "The maps alone are worth the price.",
        },
        {
            "reviewer": "Reviewer2",
            "text": "Beautiful to look at, hard to follow. I got lost twice, like the hero.",
        },
    ],
    4: [
        {
            "reviewer": "Reviewer1",
            "text": "A cookbook that explains why, not only how. My bread finally rises.",
        },
        {
            "reviewer": "Reviewer2",
            "text": "Every recipe I tried worked the first time.",
        },
    ],
}
DEFAULT_REVIEWS = [
    {"reviewer": "Reviewer1", "text": "A good read."},
    {"reviewer": "Reviewer2", "text": "Not my favourite, but worth a look."},
]


def reviews_of(product_id: int) -> list[dict[str, str]]:
    return [dict(r) for r in REVIEWS.get(product_id, DEFAULT_REVIEWS)]
