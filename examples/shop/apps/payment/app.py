"""The payment service: `POST /pay` -> {"status": "paid", "amount": ...}.

PAYMENT_FAIL_RATE (0..1) makes that share of payments fail with 500, and
PAYMENT_LATENCY (seconds) slows every payment down: both for circuit-breaking and
outlier-detection demos.

A paid order is an event: with `$K_SINK` set (the shop's SinkBinding sets it to its
broker), payment sends an `order.placed` CloudEvent there. `POST /refunds` takes an
order that could not be shipped (the shipping trigger's dead-letter sink) and refunds
it.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Mapping

from shoplib.events import Publisher, attributes
from shoplib.server import Request, Response, Route, health, json_response, log, serve


def make_routes(
    env: Mapping[str, str],
    chance: Callable[[], float] = random.random,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Route]:
    fail_rate = float(env.get("PAYMENT_FAIL_RATE", "0") or 0)
    latency = float(env.get("PAYMENT_LATENCY", "0") or 0)
    if not 0 <= fail_rate <= 1:
        raise SystemExit(f"PAYMENT_FAIL_RATE must be from 0 to 1, got {fail_rate}")
    events = Publisher("payment", env)

    def pay(request: Request) -> Response:
        try:
            body = request.json()
            amount = round(float(body["amount"]), 2)
        except (ValueError, KeyError, TypeError):
            return json_response({"error": 'expected JSON {"amount": N}'}, 400)
        if amount < 0:
            return json_response({"error": "amount must not be negative"}, 400)
        if latency > 0:
            sleep(latency)
        if fail_rate > 0 and chance() < fail_rate:
            return json_response({"status": "failed", "amount": amount}, 500)
        transaction = uuid.uuid4().hex
        user = str(body.get("user") or "guest")
        order = {"transaction": transaction, "user": user, "amount": amount}
        # `amount` is also an extension, so that triggers can filter on it.
        events.publish("order.placed", transaction, order, {"amount": f"{amount:.2f}"})
        return json_response({"status": "paid", "amount": amount, "transaction": transaction})

    def refund(request: Request) -> Response:
        event = attributes(request)
        try:
            order = request.json()
        except ValueError:
            order = {}
        log(
            "payment",
            f"refund {order.get('amount')} for order {event.get('id')}: not delivered to "
            f"{event.get('knativeerrordest', '?')} ({event.get('knativeerrorcode', '?')})",
        )
        return Response(202)

    return [
        Route("GET", "/health", health),
        Route("POST", "/pay", pay),
        Route("POST", "/refunds", refund),
    ]


def main() -> None:
    serve("payment", make_routes(os.environ))
