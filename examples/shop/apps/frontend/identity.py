"""Who is asking, and the headers the frontend sends on their behalf. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping

_USER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def current_user(query: Mapping[str, str], cookies: Mapping[str, str]) -> str | None:
    """The `u` query parameter, else the `user` cookie; None for a guest or a bad name."""
    for candidate in (query.get("u"), cookies.get("user")):
        if candidate and _USER_NAME.match(candidate):
            return candidate
    return None


def outgoing_headers(
    propagated: Mapping[str, str], user: str | None, token: str | None
) -> dict[str, str]:
    """Headers for the frontend's calls: the trace context it received, plus
    `end-user` (what VirtualService matches such as `end-user: jason` look at) and the
    user's JWT. A client cannot pick its own `end-user`: only a signed-in name counts."""
    headers = {k: v for k, v in propagated.items() if k not in ("end-user", "authorization")}
    if user:
        headers["end-user"] = user
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers
