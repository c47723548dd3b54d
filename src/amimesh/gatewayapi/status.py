"""Conditions in the Gateway API's (and Kubernetes') shape."""

from __future__ import annotations

from typing import Any

Condition = dict[str, Any]


def condition(kind: str, ok: bool, reason: str, message: str, now: str) -> Condition:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }
