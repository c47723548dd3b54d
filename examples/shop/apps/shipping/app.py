"""The shipping service, driven by events: the broker delivers each `order.placed`
CloudEvent to `POST /`. Shipping answers with an event of its own, `order.shipped`,
which the broker takes back in for its triggers (the invoice).

An order over SHIPPING_LIMIT (dollars, default 100) cannot be shipped: shipping
answers 500, so the trigger retries it, then sends it to its dead-letter sink.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from shoplib.events import attributes, reply
from shoplib.server import Request, Response, Route, health, json_response, log, serve

CARRIERS = ("parcel-post", "courier")


def make_routes(env: Mapping[str, str]) -> list[Route]:
    limit = float(env.get("SHIPPING_LIMIT", "100") or 100)

    def ship(request: Request) -> Response:
        event = attributes(request)
        if event.get("type") != "order.placed":
            return json_response({"error": "expected an order.placed event"}, 400)
        try:
            order = request.json()
            amount = float(order["amount"])
        except (ValueError, KeyError, TypeError):
            return json_response({"error": 'expected JSON {"amount": N}'}, 400)
        if amount > limit:
            log("shipping", f"order {event.get('id')}: {amount} is over {limit}, not shipped")
            return json_response({"error": f"orders over {limit} are not shipped"}, 500)
        carrier = CARRIERS[0] if amount < limit / 2 else CARRIERS[1]
        log("shipping", f"order {event.get('id')} shipped by {carrier}")
        shipped = {**order, "order": event.get("id"), "carrier": carrier}
        return reply("order.shipped", "/shop/shipping", shipped)

    return [Route("GET", "/health", health), Route("POST", "/", ship)]


def main() -> None:
    serve("shipping", make_routes(os.environ))
