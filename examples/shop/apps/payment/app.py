"""The payment service: `POST /pay` -> {"status": "paid", "amount": ...}.

PAYMENT_FAIL_RATE (0..1) makes that share of payments fail with 500, and
PAYMENT_LATENCY (seconds) slows every payment down: both for circuit-breaking and
outlier-detection demos.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Mapping

from shoplib.server import Request, Response, Route, health, json_response, serve


def make_routes(
    env: Mapping[str, str],
    chance: Callable[[], float] = random.random,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Route]:
    fail_rate = float(env.get("PAYMENT_FAIL_RATE", "0") or 0)
    latency = float(env.get("PAYMENT_LATENCY", "0") or 0)
    if not 0 <= fail_rate <= 1:
        raise SystemExit(f"PAYMENT_FAIL_RATE must be from 0 to 1, got {fail_rate}")

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
        return json_response({"status": "paid", "amount": amount, "transaction": transaction})

    return [Route("GET", "/health", health), Route("POST", "/pay", pay)]


def main() -> None:
    serve("payment", make_routes(os.environ))
