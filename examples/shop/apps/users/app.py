"""The users service: `POST /login` issues an ES512 JWT; `GET /.well-known/jwks.json`.

Demo login: any of the known user names, no password. The signing key is a P-521 key
made at startup, or read (PEM) from USERS_KEY_FILE so tokens survive a restart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from shoplib.server import Request, Response, Route, health, json_response, serve

from users import jwt

# Demo accounts and their groups (the `groups` claim, for authorization policies).
USERS: dict[str, tuple[str, ...]] = {
    "jason": ("customers", "testers"),
    "alice": ("customers", "admins"),
    "bob": ("customers",),
}
TOKEN_TTL = 3600


def load_key(env: Mapping[str, str]) -> ec.EllipticCurvePrivateKey:
    path = env.get("USERS_KEY_FILE")
    if not path:
        return jwt.new_key()
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP521R1):
        raise SystemExit(f"USERS_KEY_FILE {path} must hold a P-521 EC private key")
    return key


def make_routes(
    key: ec.EllipticCurvePrivateKey, clock: Callable[[], float] = time.time
) -> list[Route]:
    public = jwt.public_jwk(key.public_key())
    jwks = {"keys": [public]}

    def login(request: Request) -> Response:
        try:
            body = request.json()
            username = str(body["username"]).strip().lower()
        except (ValueError, KeyError, TypeError):
            return json_response({"error": 'expected JSON {"username": NAME}'}, 400)
        groups = USERS.get(username)
        if groups is None:
            known = ", ".join(sorted(USERS))
            return json_response({"error": f"unknown user; try one of: {known}"}, 401)
        claims = jwt.claims_for(username, groups, int(clock()), TOKEN_TTL)
        token = jwt.sign(claims, key, public["kid"])
        return json_response(
            {"token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL, "user": username}
        )

    def keys(_: Request) -> Response:
        return json_response(jwks)

    return [
        Route("GET", "/health", health),
        Route("POST", "/login", login),
        Route("GET", "/.well-known/jwks.json", keys),
    ]


def main() -> None:
    serve("users", make_routes(load_key(os.environ)))
