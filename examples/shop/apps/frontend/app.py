"""The frontend's routes: product page, login, cart, checkout, static files, health."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

from shoplib.client import UpstreamError
from shoplib.server import (
    Request,
    Response,
    Route,
    health,
    html,
    log,
    redirect,
    serve,
    text,
)

from frontend import page
from frontend.identity import current_user, outgoing_headers
from frontend.upstreams import Settings, Upstreams
from frontend.views import Book, CartLine, Frontend, Page, Reviews

STATIC = Path(__file__).parent / "static"
GUEST = "guest"
COOKIE_ATTRS = "Path=/; SameSite=Lax"


def _int(value: str | None, default: int) -> int | None:
    if value is None or value == "":
        return default
    return int(value) if value.isdigit() and len(value) < 10 else None


class Shop:
    def __init__(self, upstreams: Upstreams, frontend: Frontend) -> None:
        self.up = upstreams
        self.frontend = frontend

    def _who(self, request: Request) -> tuple[str | None, dict[str, str]]:
        cookies = request.cookies()
        user = current_user(request.query, cookies)
        # The JWT belongs to the signed-in user only, not to a `?u=` override.
        token = cookies.get("token") if user and user == cookies.get("user") else None
        return user, outgoing_headers(request.propagated(), user, token)

    def product_page(self, request: Request) -> Response:
        user, headers = self._who(request)
        product_id = _int(request.query.get("id"), 1)
        if product_id is None:
            return text("id must be a number\n", 400)
        book: Book | None = None
        books: tuple[Book, ...] = ()
        reviews: Reviews | None = None
        try:
            book = self.up.book(product_id, headers)
            books = self.up.books(headers)
        except UpstreamError as err:
            log("frontend", f"catalog: {err}")
        try:
            reviews = self.up.reviews(product_id, headers)
        except UpstreamError as err:
            log("frontend", f"reviews: {err}")
        view = Page(product_id, user, book, reviews, books, self.frontend)
        return html(page.product_page(view))

    def login(self, request: Request) -> Response:
        name = (request.query.get("u") or "").strip().lower()
        _, headers = self._who(request)
        if current_user({"u": name}, {}) is None:
            return self._message("Sign in", "Give a user name: /login?u=jason", None, 400)
        try:
            token = self.up.login(name, headers)
        except UpstreamError as err:
            log("frontend", f"users: {err}")
            return self._message("Sign in", "Sign-in is currently unavailable.", None, 503)
        if token is None:
            return self._message("Sign in", f"Unknown user {name}.", None, 401)
        return redirect(
            "/productpage",
            [
                ("Set-Cookie", f"user={name}; {COOKIE_ATTRS}"),
                ("Set-Cookie", f"token={token}; HttpOnly; {COOKIE_ATTRS}"),
            ],
        )

    def logout(self, _: Request) -> Response:
        expired = "Max-Age=0; " + COOKIE_ATTRS
        cleared = [("Set-Cookie", f"user=; {expired}"), ("Set-Cookie", f"token=; {expired}")]
        return redirect("/productpage", cleared)

    def _lines(self, user: str, headers: Mapping[str, str]) -> list[CartLine]:
        items = self.up.cart(user, headers)
        try:
            by_id = {b.id: b for b in self.up.books(headers)}
        except UpstreamError as err:
            log("frontend", f"catalog: {err}")
            by_id = {}
        return [CartLine(item, qty, by_id.get(item)) for item, qty in items]

    def show_cart(self, request: Request) -> Response:
        user, headers = self._who(request)
        try:
            lines: list[CartLine] | None = self._lines(user or GUEST, headers)
        except UpstreamError as err:
            log("frontend", f"cart: {err}")
            lines = None
        return html(page.cart_page(user, lines, self.frontend), 200 if lines is not None else 503)

    def add_to_cart(self, request: Request) -> Response:
        user, headers = self._who(request)
        item = _int(request.query.get("item"), 0)
        if not item:
            return text("item must be a product id: /cart/add?item=1\n", 400)
        try:
            self.up.add_to_cart(user or GUEST, item, headers)
        except UpstreamError as err:
            log("frontend", f"cart: {err}")
            return html(page.cart_page(user, None, self.frontend), 503)
        return redirect("/cart")

    def checkout(self, request: Request) -> Response:
        """Pay for the cart, or for `?item=ID` at once ("buy now", handy for load tests)."""
        user, headers = self._who(request)
        owner = user or GUEST
        buy_now = _int(request.query.get("item"), 0)
        try:
            if buy_now:
                by_id = {b.id: b for b in self.up.books(headers)}
                lines = [CartLine(buy_now, 1, by_id.get(buy_now))]
            else:
                lines = self._lines(owner, headers)
        except UpstreamError as err:
            log("frontend", f"checkout: {err}")
            return self._message("Checkout", page.CART_UNAVAILABLE, user, 503)
        if not lines:
            return self._message("Checkout", "Your cart is empty.", user, 400)
        cents = sum(line.cents for line in lines)
        try:
            reply = self.up.pay(owner, cents, headers)
        except UpstreamError as err:
            log("frontend", f"payment: {err}")
            return self._message("Checkout", page.PAYMENT_UNAVAILABLE, user, 503)
        if not reply.ok:
            log("frontend", f"payment answered {reply.status}")
            status = 503 if reply.status in (503, 504, 429) else 502
            return self._message("Checkout", page.PAYMENT_UNAVAILABLE, user, status)
        if not buy_now:
            try:
                self.up.clear_cart(owner, headers)
            except UpstreamError as err:
                log("frontend", f"cart: {err}")
        paid = f"Paid {page.money(cents)}. Thank you!"
        return self._message("Checkout", paid, user, 200)

    def static(self, request: Request) -> Response:
        name = request.params["name"]
        if name != "style.css":
            return text("not found\n", 404)
        body = (STATIC / name).read_bytes()
        return Response(200, body, "text/css; charset=utf-8", [("Cache-Control", "max-age=300")])

    def _message(self, title: str, message: str, user: str | None, status: int) -> Response:
        return html(page.message_page(title, message, user, self.frontend), status)

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/health", health),
            Route("GET", "/", self.product_page),
            Route("GET", "/productpage", self.product_page),
            Route("GET", "/login", self.login),
            Route("GET", "/logout", self.logout),
            Route("GET", "/cart", self.show_cart),
            Route("POST", "/cart/add", self.add_to_cart),
            Route("POST", "/checkout", self.checkout),
            Route("GET", r"/static/(?P<name>[A-Za-z0-9_.-]+)", self.static),
        ]


def main() -> None:
    env = os.environ
    frontend = Frontend(
        version=env.get("FRONTEND_VERSION", "v1"),
        color=env.get("FRONTEND_COLOR", "blue"),
        instance=env.get("AMI_INSTANCE") or socket.gethostname(),
    )
    upstreams = Upstreams(Settings.from_env(env))
    try:
        serve(f"frontend-{frontend.version}", Shop(upstreams, frontend).routes())
    finally:
        upstreams.close()
