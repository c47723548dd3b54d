"""Shop services' handlers called in-process, without sockets (shoplib.server.dispatch)."""

from __future__ import annotations

import json
import queue
import sys
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

APPS = Path(__file__).resolve().parents[2] / "examples" / "shop" / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

from cart.app import Carts  # noqa: E402
from cart.app import make_routes as cart_routes  # noqa: E402
from catalog.data import PRODUCTS, product  # noqa: E402
from invoice.app import Invoices  # noqa: E402
from payment.app import make_routes as payment_routes  # noqa: E402
from ratings.app import ROUTES as RATINGS  # noqa: E402
from reviews.app import make_routes as reviews_routes  # noqa: E402
from shipping.app import make_routes as shipping_routes  # noqa: E402
from shoplib.server import Request, Response, Route, dispatch  # noqa: E402
from users import jwt  # noqa: E402
from users.app import make_routes as users_routes  # noqa: E402


def _call(
    routes: list[Route],
    method: str,
    path: str,
    body: Any = None,
    cookie: str = "",
    event: dict[str, str] | None = None,
) -> tuple[Response, Any]:
    headers = Message()
    if cookie:
        headers["Cookie"] = cookie
    for name, value in (event or {}).items():
        headers[f"ce-{name}"] = value
    raw = b"" if body is None else json.dumps(body).encode()
    response = dispatch(routes, Request(method, path, {}, headers, raw))
    decoded = json.loads(response.body) if response.content_type == "application/json" else None
    return response, decoded


def test_health_everywhere() -> None:
    for routes in (RATINGS, cart_routes(Carts()), payment_routes({})):
        response, _ = _call(routes, "GET", "/health")
        assert (response.status, response.body) == (200, b"ok\n")


def test_unknown_path_and_wrong_method() -> None:
    assert _call(RATINGS, "GET", "/nope")[0].status == 404
    response, _ = _call(RATINGS, "POST", "/ratings/1")
    assert response.status == 405
    assert ("Allow", "GET") in response.headers


def test_ratings() -> None:
    response, body = _call(RATINGS, "GET", "/ratings/1")
    assert response.status == 200
    assert body == {"id": 1, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}
    assert _call(RATINGS, "GET", "/ratings/999")[1]["ratings"] == {"Reviewer1": 5, "Reviewer2": 4}


def test_reviews_v1_answers_without_calling_ratings() -> None:
    routes = reviews_routes({"REVIEWS_VERSION": "v1", "AMI_INSTANCE": "reviews-v1-0"})
    response, body = _call(routes, "GET", "/reviews/1")
    assert response.status == 200
    assert body["version"] == "v1" and body["served_by"] == "reviews-v1-0"
    assert len(body["reviews"]) == 2 and all("rating" not in r for r in body["reviews"])


def test_cart_add_show_clear() -> None:
    routes = cart_routes(Carts())
    assert _call(routes, "GET", "/cart/bob")[1] == {"user": "bob", "items": []}
    response, body = _call(routes, "POST", "/cart/bob/items", {"item": 2})
    assert response.status == 201
    _call(routes, "POST", "/cart/bob/items", {"item": 2, "quantity": 2})
    _call(routes, "POST", "/cart/bob/items", {"item": 1})
    _call(routes, "POST", "/cart/alice/items", {"item": 3})
    assert _call(routes, "GET", "/cart/bob")[1]["items"] == [
        {"item": 1, "quantity": 1},
        {"item": 2, "quantity": 3},
    ]
    _call(routes, "DELETE", "/cart/bob")
    assert _call(routes, "GET", "/cart/bob")[1]["items"] == []
    assert _call(routes, "GET", "/cart/alice")[1]["items"] == [{"item": 3, "quantity": 1}]


@pytest.mark.parametrize("body", [None, {"thing": 1}, {"item": "x"}, {"item": 0}, [1]])
def test_cart_rejects_bad_items(body: Any) -> None:
    assert _call(cart_routes(Carts()), "POST", "/cart/bob/items", body)[0].status == 400


def test_payment_pays_and_fails_at_the_configured_rate() -> None:
    ok = payment_routes({})
    response, body = _call(ok, "POST", "/pay", {"amount": 18.99})
    assert response.status == 200
    assert body["status"] == "paid" and body["amount"] == 18.99 and body["transaction"]
    always = payment_routes({"PAYMENT_FAIL_RATE": "1"}, chance=lambda: 0.999)
    response, body = _call(always, "POST", "/pay", {"amount": 1})
    assert (response.status, body["status"]) == (500, "failed")
    never = payment_routes({"PAYMENT_FAIL_RATE": "0.5"}, chance=lambda: 0.5)
    assert _call(never, "POST", "/pay", {"amount": 1})[0].status == 200
    assert _call(ok, "POST", "/pay", {"amount": -1})[0].status == 400
    assert _call(ok, "POST", "/pay", {})[0].status == 400


def test_payment_latency_and_bad_rate() -> None:
    slept: list[float] = []
    routes = payment_routes({"PAYMENT_LATENCY": "0.25"}, sleep=slept.append)
    _call(routes, "POST", "/pay", {"amount": 1})
    assert slept == [0.25]
    with pytest.raises(SystemExit):
        payment_routes({"PAYMENT_FAIL_RATE": "2"})


def test_users_login_issues_a_token_that_verifies_against_the_jwks() -> None:
    routes = users_routes(jwt.new_key(), clock=lambda: 1_800_000_000.5)
    response, body = _call(routes, "POST", "/login", {"username": "Jason"})
    assert response.status == 200
    assert body["token_type"] == "Bearer" and body["user"] == "jason"
    jwks = _call(routes, "GET", "/.well-known/jwks.json")[1]
    claims = jwt.verify(body["token"], jwks, now=1_800_000_100)
    assert claims["sub"] == "jason" and claims["iat"] == 1_800_000_000
    assert claims["groups"] == ["customers", "testers"]
    assert _call(routes, "POST", "/login", {"username": "mallory"})[0].status == 401
    assert _call(routes, "POST", "/login", {"name": "jason"})[0].status == 400


def test_catalog_data() -> None:
    ids = [p.id for p in PRODUCTS]
    assert ids == sorted(set(ids))
    assert all(p.title and p.author and p.price_cents > 0 for p in PRODUCTS)
    found = product(1)
    assert found is not None and found.title == "The Late Train"
    assert product(999) is None


def test_request_cookies() -> None:
    headers = Message()
    headers["Cookie"] = "user=jason; token=a.b.c; theme=dark%20blue; bare"
    request = Request("GET", "/", {}, headers, b"")
    assert request.cookies() == {"user": "jason", "token": "a.b.c", "theme": "dark blue"}


class _Sink(BaseHTTPRequestHandler):
    """A sink that keeps what it gets: (headers, body)."""

    got: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.put(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_payment_sends_a_paid_order_to_its_sink_as_an_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            "K_SINK": f"http://127.0.0.1:{server.server_address[1]}/default/default",
            "K_CE_OVERRIDES": json.dumps({"extensions": {"shop": "test"}}),
        }
        response, body = _call(payment_routes(env), "POST", "/pay", {"amount": 7, "user": "al"})
        assert response.status == 200
        headers, data = _Sink.got.get(timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert headers["ce-type"] == "order.placed" and headers["ce-specversion"] == "1.0"
    assert headers["ce-id"] == body["transaction"]
    assert headers["ce-source"] == "/shop/payment"
    assert (headers["ce-amount"], headers["ce-shop"]) == ("7.00", "test")
    assert json.loads(data) == {"transaction": body["transaction"], "user": "al", "amount": 7}
    # Without a sink, no event (and the payment is the same).
    assert _call(payment_routes({}), "POST", "/pay", {"amount": 7})[0].status == 200


def test_payment_refunds_a_dead_lettered_order() -> None:
    dead = {"type": "order.placed", "id": "o-1", "knativeerrorcode": "500"}
    response, _ = _call(payment_routes({}), "POST", "/refunds", {"amount": 126}, event=dead)
    # No body: a broker would take a body that is not an event as an error.
    assert (response.status, response.body) == (202, b"")


def test_shipping_ships_an_order_with_an_event_or_refuses_one_over_its_limit() -> None:
    routes = shipping_routes({"SHIPPING_LIMIT": "100"})
    placed = {"type": "order.placed", "id": "o-1", "specversion": "1.0", "source": "/t"}
    response, body = _call(routes, "POST", "/", {"amount": 24.5, "user": "al"}, event=placed)
    assert response.status == 200
    answer = dict(response.headers)
    assert answer["ce-type"] == "order.shipped" and answer["ce-source"] == "/shop/shipping"
    assert answer["ce-specversion"] == "1.0" and answer["ce-id"]
    assert body == {"amount": 24.5, "user": "al", "order": "o-1", "carrier": "parcel-post"}
    assert _call(routes, "POST", "/", {"amount": 126}, event=placed)[0].status == 500
    assert _call(routes, "POST", "/", {"amount": 1}, event={"type": "x"})[0].status == 400
    assert _call(routes, "POST", "/", {}, event=placed)[0].status == 400


def test_invoice_writes_one_per_shipped_order() -> None:
    invoices = Invoices()
    routes = [Route("POST", "/", invoices.write), Route("GET", "/invoices", invoices.list)]
    shipped = {"type": "order.shipped", "id": "s-1"}
    order = {"order": "o-1", "user": "al", "amount": 24.5, "carrier": "courier"}
    response, _ = _call(routes, "POST", "/", order, event=shipped)
    assert (response.status, response.body) == (202, b"")
    assert _call(routes, "POST", "/", order, event={"type": "order.placed"})[0].status == 400
    _, listed = _call(routes, "GET", "/invoices")
    assert listed == [{**order, "revision": ""}]
