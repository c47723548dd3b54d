"""The invoice service, serverless: a Knative Service that starts at zero and is woken
by the first `order.shipped` event its trigger delivers to `POST /`.

It keeps the invoices it wrote in memory: `GET /invoices` lists them (with the
revision that wrote them, from Knative's `K_REVISION`).
"""

from __future__ import annotations

import os
import threading

from shoplib.events import attributes
from shoplib.server import Request, Response, Route, health, json_response, log, serve

MAX_KEPT = 100


class Invoices:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: list[dict[str, object]] = []

    def write(self, request: Request) -> Response:
        event = attributes(request)
        if event.get("type") != "order.shipped":
            return json_response({"error": "expected an order.shipped event"}, 400)
        try:
            order = request.json()
        except ValueError:
            return json_response({"error": "expected JSON"}, 400)
        invoice = {
            "order": order.get("order"),
            "user": order.get("user"),
            "amount": order.get("amount"),
            "carrier": order.get("carrier"),
            "revision": os.environ.get("K_REVISION", ""),
        }
        with self._lock:
            self._kept = [*self._kept, invoice][-MAX_KEPT:]
        log("invoice", f"invoice for order {invoice['order']}: {invoice['amount']}")
        # No body: a broker takes a non-empty answer that is not an event as an error.
        return Response(202)

    def list(self, _request: Request) -> Response:
        with self._lock:
            return json_response(self._kept)


def main() -> None:
    invoices = Invoices()
    routes = [
        Route("GET", "/health", health),
        Route("POST", "/", invoices.write),
        Route("GET", "/invoices", invoices.list),
    ]
    serve("invoice", routes)
