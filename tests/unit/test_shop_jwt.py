"""The users service's ES512 JWTs and JWKS (examples/shop/apps/users/jwt.py)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

APPS = Path(__file__).resolve().parents[2] / "examples" / "shop" / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

from users import jwt  # noqa: E402
from users.app import load_key  # noqa: E402

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return jwt.new_key()


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token(key: ec.EllipticCurvePrivateKey, **overrides: Any) -> tuple[str, dict[str, Any]]:
    jwk = jwt.public_jwk(key.public_key())
    claims = {**jwt.claims_for("jason", ["customers"], NOW), **overrides}
    return jwt.sign(claims, key, jwk["kid"]), {"keys": [jwk]}


def test_jwk_is_a_p521_es512_key_with_a_thumbprint_kid(key: ec.EllipticCurvePrivateKey) -> None:
    jwk = jwt.public_jwk(key.public_key())
    assert {k: jwk[k] for k in ("kty", "crv", "alg", "use")} == {
        "kty": "EC",
        "crv": "P-521",
        "alg": "ES512",
        "use": "sig",
    }
    assert len(_b64(jwk["x"])) == 66 and len(_b64(jwk["y"])) == 66
    assert jwk["kid"] == jwt.thumbprint(jwk)
    numbers = key.public_key().public_numbers()
    assert int.from_bytes(_b64(jwk["x"]), "big") == numbers.x
    assert int.from_bytes(_b64(jwk["y"]), "big") == numbers.y


def test_thumbprint_covers_only_the_required_members() -> None:
    # Only crv, kty, x, y count, in that order, whatever else the JWK has.
    a = {"kty": "EC", "crv": "P-521", "x": "AA", "y": "BB"}
    assert jwt.thumbprint(a) == jwt.thumbprint({**a, "kid": "other", "alg": "ES512"})
    assert jwt.thumbprint(a) != jwt.thumbprint({**a, "x": "AB"})


def test_token_has_es512_header_raw_signature_and_claims(key: ec.EllipticCurvePrivateKey) -> None:
    token, jwks = _token(key)
    header_b64, payload_b64, sig_b64 = token.split(".")
    header = json.loads(_b64(header_b64))
    assert header == {"alg": "ES512", "typ": "JWT", "kid": jwks["keys"][0]["kid"]}
    claims = json.loads(_b64(payload_b64))
    assert claims["iss"] == "users.shop.ami"
    assert claims["aud"] == "shop"
    assert claims["sub"] == "jason"
    assert claims["exp"] == NOW + 3600
    assert claims["groups"] == ["customers"]
    raw = _b64(sig_b64)
    assert len(raw) == 132  # R || S, 66 bytes each
    # Checked with cryptography alone, not with the module under test.
    der = encode_dss_signature(int.from_bytes(raw[:66], "big"), int.from_bytes(raw[66:], "big"))
    key.public_key().verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA512()))


def test_verify_accepts_a_good_token(key: ec.EllipticCurvePrivateKey) -> None:
    token, jwks = _token(key)
    claims = jwt.verify(token, jwks, now=NOW + 10)
    assert claims["sub"] == "jason"


def test_verify_uses_only_the_jwks_public_key(key: ec.EllipticCurvePrivateKey) -> None:
    token, jwks = _token(key)
    public = jwt.public_key_from_jwk(jwks["keys"][0])
    assert public.public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize(
    ("overrides", "now", "problem"),
    [
        ({"aud": "elsewhere"}, NOW, "aud"),
        ({"iss": "someone"}, NOW, "iss"),
        ({}, NOW + 3600 + 31, "expired"),
        ({"nbf": NOW + 600}, NOW, "not valid yet"),
    ],
)
def test_verify_rejects_bad_claims(
    key: ec.EllipticCurvePrivateKey, overrides: dict[str, Any], now: int, problem: str
) -> None:
    token, jwks = _token(key, **overrides)
    with pytest.raises(jwt.InvalidToken, match=problem):
        jwt.verify(token, jwks, now=now)


def test_verify_rejects_a_changed_payload(key: ec.EllipticCurvePrivateKey) -> None:
    token, jwks = _token(key)
    header, _, sig = token.split(".")
    forged = jwt.b64url(json.dumps(jwt.claims_for("alice", ["admins"], NOW)).encode())
    with pytest.raises(jwt.InvalidToken, match="signature"):
        jwt.verify(f"{header}.{forged}.{sig}", jwks, now=NOW)


def test_verify_rejects_another_key_and_unknown_kid(key: ec.EllipticCurvePrivateKey) -> None:
    token, _ = _token(key)
    other = jwt.public_jwk(jwt.new_key().public_key())
    with pytest.raises(jwt.InvalidToken, match="kid"):
        jwt.verify(token, {"keys": [other]}, now=NOW)
    kid = json.loads(_b64(token.split(".")[0]))["kid"]
    with pytest.raises(jwt.InvalidToken, match="signature"):
        jwt.verify(token, {"keys": [{**other, "kid": kid}]}, now=NOW)


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "!!.??.**"])
def test_verify_rejects_malformed_tokens(key: ec.EllipticCurvePrivateKey, token: str) -> None:
    _, jwks = _token(key)
    with pytest.raises(jwt.InvalidToken):
        jwt.verify(token, jwks, now=NOW)


def test_verify_rejects_other_algorithms(key: ec.EllipticCurvePrivateKey) -> None:
    token, jwks = _token(key)
    _, payload, sig = token.split(".")
    none_header = jwt.b64url(b'{"alg":"none","kid":"x"}')
    with pytest.raises(jwt.InvalidToken, match="alg"):
        jwt.verify(f"{none_header}.{payload}.{sig}", jwks, now=NOW)


def test_public_jwk_refuses_other_curves() -> None:
    with pytest.raises(ValueError, match="P-521"):
        jwt.public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())


def test_key_file_is_loaded_and_must_be_p521(tmp_path: Path) -> None:
    key = jwt.new_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = tmp_path / "users.pem"
    path.write_bytes(pem)
    loaded = load_key({"USERS_KEY_FILE": str(path)})
    assert loaded.public_key().public_numbers() == key.public_key().public_numbers()
    small = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(small)
    with pytest.raises(SystemExit, match="P-521"):
        load_key({"USERS_KEY_FILE": str(path)})
