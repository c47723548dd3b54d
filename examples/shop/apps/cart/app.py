"""The cart service: `GET /cart/{user}`, `POST /cart/{user}/items`, `DELETE /cart/{user}`."""

from __future__ import annotations

import threading
from collections import Counter

from shoplib.server import Request, Response, Route, health, json_response, serve

USER = r"(?P<user>[A-Za-z0-9_.-]{1,64})"


class Carts:
    """Item ids and quantities by user; safe to share between request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._carts: dict[str, Counter[int]] = {}

    def add(self, user: str, item: int, quantity: int = 1) -> None:
        with self._lock:
            self._carts.setdefault(user, Counter())[item] += quantity

    def items(self, user: str) -> list[dict[str, int]]:
        with self._lock:
            cart = self._carts.get(user, Counter())
            return [{"item": i, "quantity": q} for i, q in sorted(cart.items())]

    def clear(self, user: str) -> None:
        with self._lock:
            self._carts.pop(user, None)


def make_routes(carts: Carts) -> list[Route]:
    def show(request: Request) -> Response:
        user = request.params["user"]
        return json_response({"user": user, "items": carts.items(user)})

    def add(request: Request) -> Response:
        user = request.params["user"]
        try:
            body = request.json()
            item = int(body["item"])
            quantity = int(body.get("quantity", 1))
        except (ValueError, KeyError, TypeError, AttributeError):
            return json_response({"error": 'expected JSON {"item": ID, "quantity": N}'}, 400)
        if item < 1 or not 1 <= quantity <= 100:
            return json_response({"error": "item must be >= 1 and quantity 1..100"}, 400)
        carts.add(user, item, quantity)
        return json_response({"user": user, "items": carts.items(user)}, 201)

    def clear(request: Request) -> Response:
        user = request.params["user"]
        carts.clear(user)
        return json_response({"user": user, "items": []})

    return [
        Route("GET", "/health", health),
        Route("GET", f"/cart/{USER}", show),
        Route("DELETE", f"/cart/{USER}", clear),
        Route("POST", f"/cart/{USER}/items", add),
    ]


def main() -> None:
    serve("cart", make_routes(Carts()))
