"""ES512 JSON Web Tokens (RFC 7515/7518/7519) and their JWK (RFC 7517, thumbprint 7638).

Pure apart from the key objects handed in: the caller passes the time. Signatures are
JWS's raw R || S (66 bytes each on P-521), not the DER that `cryptography` produces.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ALG = "ES512"
CURVE = "P-521"
COORD_BYTES = 66  # ceil(521 / 8)
ISSUER = "users.shop.ami"
AUDIENCE = "shop"


class InvalidToken(ValueError):
    """The token is malformed, its signature does not verify, or a claim is wrong."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as err:
        raise InvalidToken(f"not base64url: {err}") from err


def _json_b64(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP521R1())


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC JWK: SHA-256 of its required members, base64url."""
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public key as a JWK with `alg`, `use` and a thumbprint `kid`."""
    if not isinstance(key.curve, ec.SECP521R1):
        raise ValueError(f"ES512 needs a P-521 key, not {key.curve.name}")
    numbers = key.public_numbers()
    jwk = {
        "kty": "EC",
        "crv": CURVE,
        "x": b64url(numbers.x.to_bytes(COORD_BYTES, "big")),
        "y": b64url(numbers.y.to_bytes(COORD_BYTES, "big")),
    }
    return {**jwk, "alg": ALG, "use": "sig", "kid": thumbprint(jwk)}


def public_key_from_jwk(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    if jwk.get("kty") != "EC" or jwk.get("crv") != CURVE:
        raise InvalidToken(f"expected an EC {CURVE} key")
    x = int.from_bytes(b64url_decode(str(jwk["x"])), "big")
    y = int.from_bytes(b64url_decode(str(jwk["y"])), "big")
    try:
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP521R1()).public_key()
    except ValueError as err:
        raise InvalidToken(f"bad EC point: {err}") from err


def claims_for(
    subject: str,
    groups: Sequence[str],
    now: int,
    ttl: int = 3600,
) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "sub": subject,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "groups": list(groups),
    }


def sign(claims: Mapping[str, Any], key: ec.EllipticCurvePrivateKey, kid: str) -> str:
    """A compact JWS of `claims`, signed with ES512."""
    header = _json_b64({"alg": ALG, "typ": "JWT", "kid": kid})
    payload = _json_b64(claims)
    signing_input = f"{header}.{payload}".encode("ascii")
    der = key.sign(signing_input, ec.ECDSA(hashes.SHA512()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(COORD_BYTES, "big") + s.to_bytes(COORD_BYTES, "big")
    return f"{header}.{payload}.{b64url(raw)}"


def _decode_part(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(text))
    except ValueError as err:
        raise InvalidToken(f"{what} is not JSON") from err
    if not isinstance(value, dict):
        raise InvalidToken(f"{what} is not a JSON object")
    return value


def verify(
    token: str,
    jwks: Mapping[str, Any],
    *,
    now: int,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    leeway: int = 30,
) -> dict[str, Any]:
    """The claims of `token` once its signature, issuer, audience and times check out."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("a JWS has three parts")
    header = _decode_part(parts[0], "header")
    claims = _decode_part(parts[1], "payload")
    if header.get("alg") != ALG:
        raise InvalidToken(f"alg must be {ALG}, got {header.get('alg')!r}")
    keys = [k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")]
    if not keys:
        raise InvalidToken(f"no key with kid {header.get('kid')!r} in the JWKS")
    raw = b64url_decode(parts[2])
    if len(raw) != 2 * COORD_BYTES:
        raise InvalidToken(f"an ES512 signature is {2 * COORD_BYTES} bytes, got {len(raw)}")
    r = int.from_bytes(raw[:COORD_BYTES], "big")
    s = int.from_bytes(raw[COORD_BYTES:], "big")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    try:
        public_key_from_jwk(keys[0]).verify(
            encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA512())
        )
    except InvalidSignature as err:
        raise InvalidToken("signature does not verify") from err
    if claims.get("iss") != issuer:
        raise InvalidToken(f"iss must be {issuer!r}")
    aud = claims.get("aud")
    if audience != aud and not (isinstance(aud, list) and audience in aud):
        raise InvalidToken(f"aud must include {audience!r}")
    if not isinstance(claims.get("exp"), int) or now > claims["exp"] + leeway:
        raise InvalidToken("token has expired")
    if isinstance(claims.get("nbf"), int) and now + leeway < claims["nbf"]:
        raise InvalidToken("token is not valid yet")
    return claims
