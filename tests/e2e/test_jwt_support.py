"""JSON Web Tokens for tests, built from scratch: keys, JWKS and signed tokens.

RS256 (RSA PKCS#1 v1.5, SHA-256), ES256 (P-256, SHA-256) and ES512 (P-521, SHA-512).
JWS signatures of EC keys are raw R || S, each the size of the curve (32 and 66 bytes),
not the DER that `cryptography` produces. Used by the JWT and authorization tests; it
holds no tests itself.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

_EC = {
    "ES256": (ec.SECP256R1(), "P-256", 32, hashes.SHA256()),
    "ES512": (ec.SECP521R1(), "P-521", 66, hashes.SHA512()),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_b64(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def _int_b64(n: int, size: int | None = None) -> str:
    return b64url(n.to_bytes(size or (n.bit_length() + 7) // 8, "big"))


@dataclass
class Signer:
    """A private key that signs tokens with `alg`; `kid` names it in the JWKS."""

    alg: str
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    kid: str

    def jwk(self) -> dict[str, str]:
        if isinstance(self.key, rsa.RSAPrivateKey):
            n = self.key.public_key().public_numbers()
            return {"kty": "RSA", "n": _int_b64(n.n), "e": _int_b64(n.e), **self._meta()}
        _, crv, size, _ = _EC[self.alg]
        p = self.key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": _int_b64(p.x, size),
            "y": _int_b64(p.y, size),
            **self._meta(),
        }

    def _meta(self) -> dict[str, str]:
        return {"alg": self.alg, "use": "sig", "kid": self.kid}

    def token(self, claims: Mapping[str, Any]) -> str:
        header = _json_b64({"alg": self.alg, "typ": "JWT", "kid": self.kid})
        signing_input = f"{header}.{_json_b64(claims)}".encode("ascii")
        if isinstance(self.key, rsa.RSAPrivateKey):
            sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            _, _, size, digest = _EC[self.alg]
            r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(digest)))
            sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return f"{signing_input.decode('ascii')}.{b64url(sig)}"


def signer(alg: str, kid: str | None = None) -> Signer:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(_EC[alg][0])
    return Signer(alg, key, kid or f"{alg.lower()}-key")


def jwks(*signers: Signer) -> str:
    """The public keys of `signers` as a JWKS document (JSON text)."""
    return json.dumps({"keys": [s.jwk() for s in signers]})


def claims(iss: str, sub: str, ttl: int = 3600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": iss, "sub": sub, "iat": now, "exp": now + ttl, **extra}


def tamper(token: str) -> str:
    """`token` with a payload that no longer matches its signature."""
    header, payload, sig = token.split(".")
    data = json.loads(b64decode(payload))
    data["sub"] = str(data.get("sub", "")) + "-forged"
    return f"{header}.{_json_b64(data)}.{sig}"


def b64decode(text: str) -> bytes:
    """base64url without padding, as JWTs and Envoy's payload header write it."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
