"""The frontend's clients: catalog over gRPC, the other services over HTTP.

Every method takes the headers to send (see `identity.outgoing_headers`) and raises
`UpstreamError` when the service cannot answer usefully.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from shoplib.client import Reply, UpstreamError, call
from shopproto import catalog_pb2, catalog_pb2_grpc

from frontend.views import Book, Reviews, reviews_from_json


@dataclass(frozen=True)
class Settings:
    catalog_addr: str
    reviews_url: str = "http://reviews:9080"
    cart_url: str = "http://cart:8080"
    users_url: str = "http://users:8080"
    payment_url: str = "http://payment:8080"
    timeout: float = 3.0
    reviews_timeout: float = 3.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        catalog = env.get("AMI_UPSTREAM_CATALOG_9090") or env.get("CATALOG_ADDR")
        if not catalog:
            raise SystemExit("set AMI_UPSTREAM_CATALOG_9090 (the runtime does) or CATALOG_ADDR")
        timeout = float(env.get("UPSTREAM_TIMEOUT", "3"))
        return cls(
            catalog_addr=catalog,
            reviews_url=env.get("REVIEWS_URL", cls.reviews_url).rstrip("/"),
            cart_url=env.get("CART_URL", cls.cart_url).rstrip("/"),
            users_url=env.get("USERS_URL", cls.users_url).rstrip("/"),
            payment_url=env.get("PAYMENT_URL", cls.payment_url).rstrip("/"),
            timeout=timeout,
            reviews_timeout=float(env.get("REVIEWS_TIMEOUT", str(timeout))),
        )


def _book(p: catalog_pb2.Product) -> Book:
    return Book(p.id, p.title, p.author, p.year, p.pages, p.description, p.price_cents)


def _json(reply: Reply, what: str) -> Any:
    if not reply.ok:
        raise UpstreamError(f"{what} answered {reply.status}")
    try:
        return reply.json()
    except ValueError as err:
        raise UpstreamError(f"{what} answered something that is not JSON") from err


class Upstreams:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The catalog address is a local port of the sidecar: no HTTP proxy for gRPC.
        self._channel = grpc.insecure_channel(
            settings.catalog_addr, options=[("grpc.enable_http_proxy", 0)]
        )
        self._catalog = catalog_pb2_grpc.CatalogStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def _metadata(self, headers: Mapping[str, str]) -> Sequence[tuple[str, str]]:
        return [(k.lower(), v) for k, v in headers.items()]

    def book(self, product_id: int, headers: Mapping[str, str]) -> Book | None:
        """The book, or None if the catalog has no such id."""
        try:
            found = self._catalog.GetProduct(
                catalog_pb2.GetProductRequest(id=product_id),
                metadata=self._metadata(headers),
                timeout=self.settings.timeout,
            )
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise UpstreamError(f"catalog GetProduct: {err.code()}") from err
        return _book(found)

    def books(self, headers: Mapping[str, str]) -> tuple[Book, ...]:
        try:
            found = self._catalog.ListProducts(
                catalog_pb2.ListProductsRequest(),
                metadata=self._metadata(headers),
                timeout=self.settings.timeout,
            )
        except grpc.RpcError as err:
            raise UpstreamError(f"catalog ListProducts: {err.code()}") from err
        return tuple(_book(p) for p in found.products)

    def reviews(self, product_id: int, headers: Mapping[str, str]) -> Reviews:
        url = f"{self.settings.reviews_url}/reviews/{product_id}"
        reply = call("GET", url, headers=headers, timeout=self.settings.reviews_timeout)
        try:
            return reviews_from_json(_json(reply, "reviews"))
        except ValueError as err:
            raise UpstreamError(str(err)) from err

    def cart(self, user: str, headers: Mapping[str, str]) -> list[tuple[int, int]]:
        """(item, quantity) pairs in the user's cart."""
        url = f"{self.settings.cart_url}/cart/{user}"
        data = _json(call("GET", url, headers=headers, timeout=self.settings.timeout), "cart")
        try:
            return [(int(i["item"]), int(i["quantity"])) for i in data["items"]]
        except (KeyError, TypeError, ValueError) as err:
            raise UpstreamError("cart answered something that is not a cart") from err

    def add_to_cart(self, user: str, item: int, headers: Mapping[str, str]) -> None:
        url = f"{self.settings.cart_url}/cart/{user}/items"
        reply = call(
            "POST", url, headers=headers, json_body={"item": item}, timeout=self.settings.timeout
        )
        _json(reply, "cart")

    def clear_cart(self, user: str, headers: Mapping[str, str]) -> None:
        url = f"{self.settings.cart_url}/cart/{user}"
        _json(call("DELETE", url, headers=headers, timeout=self.settings.timeout), "cart")

    def login(self, username: str, headers: Mapping[str, str]) -> str | None:
        """A JWT for the user, or None if users does not know the name."""
        url = f"{self.settings.users_url}/login"
        reply = call(
            "POST",
            url,
            headers=headers,
            json_body={"username": username},
            timeout=self.settings.timeout,
        )
        if reply.status in (400, 401):
            return None
        token = _json(reply, "users").get("token")
        if not isinstance(token, str):
            raise UpstreamError("users answered without a token")
        return token

    def pay(self, user: str, cents: int, headers: Mapping[str, str]) -> Reply:
        """The payment service's reply as is: the caller tells paid from failed."""
        url = f"{self.settings.payment_url}/pay"
        body = {"user": user, "amount": cents / 100, "currency": "USD"}
        return call("POST", url, headers=headers, json_body=body, timeout=self.settings.timeout)
